package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// Every flag is named with its environment variable, as docs/configuration.md
// and kong know it.
func TestSettingNamesFlagAndEnv(t *testing.T) {
	typ := reflect.TypeFor[Config]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, env := f.Tag.Get("name"), f.Tag.Get("env")
		if got, want := Setting(name), "--"+name+" / "+env; got != want {
			t.Errorf("Setting(%q) = %q, want %q", name, got, want)
		}
	}
	if got := Setting("no-such-flag"); got != "--no-such-flag" {
		t.Errorf("Setting of an unknown flag = %q", got)
	}
}

func TestFaultIsOneLineWithItsCause(t *testing.T) {
	cause := errors.New("first line\nsecond line")
	f := &Fault{Flag: "data-dir", Msg: "--data-dir /x cannot be created", Err: cause, Fix: "choose another with " + Setting("data-dir")}
	got := f.Error()
	want := "--data-dir /x cannot be created: first line; second line; choose another with --data-dir / ICP_DATA_DIR"
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	if !errors.Is(f, cause) {
		t.Fatal("the cause is not reachable with errors.Is")
	}
	if strings.Contains((&Fault{Msg: "m"}).Error(), ";") {
		t.Fatal("a fault with neither cause nor fix has separators")
	}
}
