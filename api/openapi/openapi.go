// Package openapi holds the service's OpenAPI 3.1 document: the five ICP
// endpoints, their headers and every error answer, as served at
// GET /openapi.json. It is embedded in the binary, so the document served is
// always the one the binary was built and tested with: api's HTTP tests
// check every response they receive against it.
package openapi

import _ "embed"

//go:embed openapi.json
var document []byte

// Document returns the OpenAPI 3.1 document as JSON. The caller must not
// modify the returned bytes.
func Document() []byte { return document }
