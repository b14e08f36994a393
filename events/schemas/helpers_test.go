package schemas_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/icpservice/icp/events/schemas"
)

// compile compiles a published schema with the draft 2020-12 rules.
func compile(t testing.TB, doc []byte) *jsonschema.Schema {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	id, _ := v.(map[string]any)["$id"].(string)
	if id == "" {
		t.Fatal("schema has no $id")
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(id, v); err != nil {
		t.Fatalf("schema %s: %v", id, err)
	}
	s, err := c.Compile(id)
	if err != nil {
		t.Fatalf("schema %s does not compile: %v", id, err)
	}
	return s
}

// eventSchema compiles the schema of eventType at version.
func eventSchema(t testing.TB, eventType string, version int) *jsonschema.Schema {
	t.Helper()
	doc, err := schemas.For(eventType, version)
	if err != nil {
		t.Fatal(err)
	}
	return compile(t, doc)
}

// validate reports why body does not match s ("" when it does).
func validate(s *jsonschema.Schema, body []byte) string {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return "not JSON: " + err.Error()
	}
	if err := s.Validate(v); err != nil {
		return err.Error()
	}
	return ""
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
