package app

import (
	"strings"
	"testing"
	"time"
)

func TestStallRuleNamesAProjectorThatHandlesNothingWhileMessagesWait(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	const after = time.Minute
	for _, c := range []struct {
		name       string
		last, now  stallSample
		wantStall  bool
		wantDetail string
	}{
		{"nothing waiting", stallSample{t0, 0, 5}, stallSample{t0.Add(time.Hour), 0, 5}, false, ""},
		{"progress", stallSample{t0, 10, 5}, stallSample{t0.Add(time.Hour), 10, 6}, false, ""},
		{"waiting, not long yet", stallSample{t0, 10, 5}, stallSample{t0.Add(after - time.Second), 12, 5}, false, ""},
		{"waiting, no progress for the whole window", stallSample{t0, 10, 5}, stallSample{t0.Add(after), 12, 5}, true, "12 messages waiting"},
	} {
		err := stallRule(c.last, c.now, after)
		if (err != nil) != c.wantStall {
			t.Errorf("%s: stallRule = %v, want stalled %v", c.name, err, c.wantStall)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), c.wantDetail) {
			t.Errorf("%s: %q does not say %q", c.name, err, c.wantDetail)
		}
	}
}
