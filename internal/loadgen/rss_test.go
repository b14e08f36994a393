package loadgen

import "testing"

func TestParseVmRSSRefusesWhatIsNotAResidentSize(t *testing.T) {
	if got, err := parseVmRSS([]byte("Name:\ticpd\nVmRSS:\t  2048 kB\nVmSwap:\t0 kB\n")); err != nil || got != 2048<<10 {
		t.Fatalf("got %d, %v; want %d", got, err, 2048<<10)
	}
	for _, bad := range []string{"", "VmRSS:\n", "VmRSS: 12 MB\n", "VmRSS: -1 kB\n", "VmRSS: 99999999999999999999 kB\n", "VmHWM: 12 kB\n"} {
		if got, err := parseVmRSS([]byte(bad)); err == nil {
			t.Errorf("%q read as %d bytes", bad, got)
		}
	}
}
