package events

import (
	"strings"
	"testing"

	"github.com/google/uuid"
)

// byParse is the rule isLowerUUID stands for.
func byParse(id string) bool {
	u, err := uuid.Parse(id)
	return err == nil && u.String() == id
}

// TestIsLowerUUID: isLowerUUID agrees with uuid.Parse and String on every
// form uuid.Parse reads and on near misses.
func TestIsLowerUUID(t *testing.T) {
	id := uuid.NewString()
	for _, s := range []string{id, strings.ToUpper(id), "{" + id + "}", "urn:uuid:" + id, strings.ReplaceAll(id, "-", ""),
		id[:35], id + "0", strings.Replace(id, "-", "_", 1), id[:8] + "g" + id[9:], id[:9] + "-" + id[10:], "", "00000000-0000-0000-0000-000000000000"} {
		if got, want := isLowerUUID(s), byParse(s); got != want {
			t.Errorf("isLowerUUID(%q) = %v, uuid.Parse and String say %v", s, got, want)
		}
	}
}

func FuzzIsLowerUUID(f *testing.F) {
	f.Add(uuid.NewString())
	f.Add(strings.ToUpper(uuid.NewString()))
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isLowerUUID(s), byParse(s); got != want {
			t.Fatalf("isLowerUUID(%q) = %v, uuid.Parse and String say %v", s, got, want)
		}
	})
}
