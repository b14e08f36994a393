package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/icpservice/icp/internal/config"
)

// TestConfigurationDocListsEveryFlag keeps docs/configuration.md complete:
// each flag and its environment variable appear on one row.
func TestConfigurationDocListsEveryFlag(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "| `--") {
			flag := strings.Trim(strings.Fields(line)[1], "`")
			rows[flag] = line
		}
	}
	typ := reflect.TypeOf(config.Config{})
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		flag, env := "--"+f.Tag.Get("name"), f.Tag.Get("env")
		row, ok := rows[flag]
		if !ok {
			t.Errorf("docs/configuration.md has no row for %s", flag)
			continue
		}
		if !strings.Contains(row, "`"+env+"`") {
			t.Errorf("docs/configuration.md row of %s does not name %s", flag, env)
		}
		if def := f.Tag.Get("default"); def != "" && !strings.Contains(row, "`"+def+"`") {
			t.Errorf("docs/configuration.md row of %s does not give its default %s", flag, def)
		}
	}
}
