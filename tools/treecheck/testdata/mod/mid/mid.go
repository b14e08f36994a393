// Package mid is the middle layer of the test module.
package mid

// Name is imported by low's tests.
func Name() string { return "mid" }
