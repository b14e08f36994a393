package config

import (
	"reflect"
	"strings"
)

// Fault is a problem found while starting that one setting cures. Its
// message is one line: what is wrong, naming the setting and its value, the
// cause when there is one, and what to do, naming the flag and its
// environment variable.
type Fault struct {
	Flag string // the setting's flag name without dashes, e.g. "admin-addr"
	Msg  string // what is wrong, e.g. "--admin-addr 127.0.0.1:9090 is in use by another process"
	Err  error  // the cause, if any; its text is kept on the same line
	Fix  string // what to do, e.g. "choose another with --admin-addr / ICP_ADMIN_ADDR"
}

func (f *Fault) Error() string {
	s := f.Msg
	if f.Err != nil {
		s += ": " + OneLine(f.Err.Error())
	}
	if f.Fix != "" {
		s += "; " + f.Fix
	}
	return s
}

func (f *Fault) Unwrap() error { return f.Err }

// Setting names a flag and its environment variable the way messages to
// operators do: "--admin-addr / ICP_ADMIN_ADDR". A name that is not a flag of
// Config is returned as "--name".
func Setting(flag string) string {
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Tag.Get("name") == flag {
			if env := f.Tag.Get("env"); env != "" {
				return "--" + flag + " / " + env
			}
		}
	}
	return "--" + flag
}

// OneLine joins the lines of a message with "; ", so that one problem is one
// line of output.
func OneLine(s string) string {
	lines := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	return strings.Join(lines, "; ")
}
