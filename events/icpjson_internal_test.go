package events

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzCompactJSON: whatever compactJSON lets appendRaw copy as it is, is
// valid JSON that json.Compact (and, with html, json.HTMLEscape) leaves
// unchanged, so the copy is what encoding/json writes; and it accepts the
// compact, valid, escape-free text it is there for (but, with html, text
// with a byte 0xE2, which leads U+2028 and U+2029 among others, and values
// nested deeper than canon follows).
func FuzzCompactJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,-0.5e+3,true,false,null,"x\\u00e9\\n"],"b":{}}`, `[]`, `""`, `0`, `-`, `01`, `1.`, `{"a":1,}`,
		`[1,]`, `{"a" :1}`, ` 1`, `"<&>"`, "\"\u2028\"", "\"\xff\"", `"\u12"`, `{"a":1}x`, `tru`, `nul`} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, raw []byte, html bool) {
		if !compactJSON(raw, html) {
			shallow := bytes.Count(raw, []byte("[")) < 32 && bytes.Count(raw, []byte("{")) < 32
			if len(raw) > 0 && json.Valid(raw) && isCompact(raw, html) && shallow && !(html && bytes.IndexByte(raw, 0xE2) >= 0) {
				t.Fatalf("compactJSON(%q, %v) refused compact, valid JSON", raw, html)
			}
			return
		}
		if !json.Valid(raw) {
			t.Fatalf("compactJSON(%q, %v) accepted invalid JSON", raw, html)
		}
		var b bytes.Buffer
		if err := json.Compact(&b, raw); err != nil || !bytes.Equal(b.Bytes(), raw) {
			t.Fatalf("compactJSON(%q, %v) accepted text json.Compact changes to %q", raw, html, b.Bytes())
		}
		if html {
			var e bytes.Buffer
			json.HTMLEscape(&e, raw)
			if !bytes.Equal(e.Bytes(), raw) {
				t.Fatalf("compactJSON(%q, true) accepted text json.HTMLEscape changes to %q", raw, e.Bytes())
			}
		}
	})
}
