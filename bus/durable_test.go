package bus

import (
	"strings"
	"testing"
)

// A durable's name becomes a file name on the server: both the projector and
// the workers refuse, before they connect, a name the server would refuse.
func TestCheckDurableName(t *testing.T) {
	for _, ok := range []string{"icp-projector", "leadsourcer_1", strings.Repeat("d", 128)} {
		if err := CheckDurableName(ok); err != nil {
			t.Errorf("CheckDurableName(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "a.b", "a*", "a>", "a/b", `a\b`, "a b", "a\tb", "a\nb", strings.Repeat("d", 129)} {
		if err := CheckDurableName(bad); err == nil {
			t.Errorf("CheckDurableName(%q) = nil, want an error", bad)
		}
	}
}
