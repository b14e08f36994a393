package jsonvalid

import (
	"encoding/json"
	"strings"
	"testing"
)

var validSeeds = []string{
	``, ` `, `{}`, `[]`, ` { "a" : [ 1 , -0.5e+3 , true , false , null , "x\u00e9\n\"" ] , "b" : { } } `, `""`, `0`, `-0`, `-`, `01`, `1.`, `.5`,
	`1e`, `1E+`, `1e-07`, `-01`, `+1`, `{"a":1,}`, `[1,]`, `[,1]`, `{,}`, `{"a"}`, `{"a":}`, `{1:2}`, `{"a" 1}`, `[1 2]`, `1 2`,
	`"\u12"`, `"\u12g4"`, `"\x"`, "\"tab\there\"", "\"\x1f\"", "\"\x7f\xff\"", `"unterminated`, `"\`, `{"a":1}x`, `tru`, `nul`,
	`true`, `falsey`, `[[[[]]]]`, `[[[[]]]`, `{"a":{"b":{"c":[{}]}}}`, `]`, `}`, "\v1", "1\f", "\u00a01",
}

// FuzzValid: Valid answers as json.Valid on any input.
func FuzzValid(f *testing.F) {
	for _, s := range validSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := Valid(b), json.Valid(b); got != want {
			t.Fatalf("Valid(%q) = %v, json.Valid says %v", b, got, want)
		}
	})
}

// TestNesting: objects and arrays nest as deep as encoding/json
// allows and no deeper, empty or not, mixed or not.
func TestNesting(t *testing.T) {
	for _, depth := range []int{MaxNesting - 1, MaxNesting, MaxNesting + 1} {
		for name, doc := range map[string]string{
			"arrays":        strings.Repeat("[", depth) + strings.Repeat("]", depth),
			"arrays, value": strings.Repeat("[", depth) + "1" + strings.Repeat("]", depth),
			"objects":       strings.Repeat(`{"a":`, depth-1) + "{}" + strings.Repeat("}", depth-1),
			"mixed":         strings.Repeat(`[{"a":`, depth/2) + strings.Repeat("[", depth%2) + "1" + strings.Repeat("]", depth%2) + strings.Repeat("}]", depth/2),
		} {
			b := []byte(doc)
			if got, want := Valid(b), json.Valid(b); got != want || want != (depth <= MaxNesting) {
				t.Errorf("%s nested %d deep: Valid %v, json.Valid %v", name, depth, got, want)
			}
		}
	}
}
