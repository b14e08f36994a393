package domain

import (
	"encoding/json"
	"testing"
)

func TestOptKeepsAbsentNullAndValueApart(t *testing.T) {
	var c CRMFilters
	if err := json.Unmarshal([]byte(`{"textSearch":null,"provider":"bullhorn"}`), &c); err != nil {
		t.Fatal(err)
	}
	if out := encode(t, c); out != `{"provider":"bullhorn","textSearch":null}` {
		t.Fatalf("absent keys must stay absent, null must stay null: %s", out)
	}
}

func TestTimeNormalisesToUTCMilliseconds(t *testing.T) {
	tm, err := ParseTime("2024-01-15T12:30:00.123456+02:00")
	if err != nil {
		t.Fatal(err)
	}
	if tm.String() != "2024-01-15T10:30:00.123Z" {
		t.Fatalf("got %s", tm)
	}
	if _, err := ParseTime("15/01/2024"); err == nil {
		t.Fatal("a non RFC 3339 time was accepted")
	}
}
