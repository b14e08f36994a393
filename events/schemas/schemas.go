// Package schemas publishes the event contract as JSON Schema (draft
// 2020-12): one schema per event type and schema version, describing the body
// of a message on icp.events.<Type> whose ce-type is icp.<Type>.v<N>, plus one
// for the icp-metadata header. The files sit beside this source so that
// workers in any language can read them; this package embeds them for Go.
//
// A version's shape never changes once published: a change of any kind, even
// an added optional field, is a new schema version, registered in
// events.CurrentSchema with an upcaster in events/consumer. Every schema here
// is checked against the events the running service really emits (see the
// tests).
package schemas

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

//go:embed *.schema.json
var files embed.FS

// MetadataFile is the schema of the icp-metadata header.
const MetadataFile = "icp.metadata.schema.json"

// FileName is the file holding the schema of eventType at schemaVersion:
// "icp.<Type>.v<N>.schema.json", the ce-type followed by ".schema.json".
func FileName(eventType string, schemaVersion int) string {
	return fmt.Sprintf("icp.%s.v%d.schema.json", eventType, schemaVersion)
}

// For returns the JSON Schema of the payload of eventType at schemaVersion.
// It fails for a type or version this release does not publish.
func For(eventType string, schemaVersion int) ([]byte, error) {
	b, err := files.ReadFile(FileName(eventType, schemaVersion))
	if err != nil {
		return nil, fmt.Errorf("schemas: no schema for %s v%d", eventType, schemaVersion)
	}
	return b, nil
}

// Metadata returns the JSON Schema of the icp-metadata header.
func Metadata() []byte {
	b, err := files.ReadFile(MetadataFile)
	if err != nil { // cannot happen: embedded above
		panic(err)
	}
	return b
}

// Key names one event schema.
type Key struct {
	Type          string
	SchemaVersion int
}

// All lists every published event schema, sorted by type and version.
func All() []Key {
	var keys []Key
	entries, _ := fs.ReadDir(files, ".")
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".schema.json")
		if !ok || e.Name() == MetadataFile {
			continue
		}
		name, ok = strings.CutPrefix(name, "icp.")
		i := strings.LastIndex(name, ".v")
		if !ok || i <= 0 {
			continue
		}
		v, err := strconv.Atoi(name[i+2:])
		if err != nil {
			continue
		}
		keys = append(keys, Key{Type: name[:i], SchemaVersion: v})
	}
	sort.Slice(keys, func(a, b int) bool {
		if keys[a].Type != keys[b].Type {
			return keys[a].Type < keys[b].Type
		}
		return keys[a].SchemaVersion < keys[b].SchemaVersion
	})
	return keys
}
