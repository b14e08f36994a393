package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/icpservice/icp/internal/config"
)

// TestReadmeListsEveryFlag keeps the README's configuration table complete:
// each flag and its environment variable appear on one row.
func TestReadmeListsEveryFlag(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
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
			t.Errorf("README's configuration table has no row for %s", flag)
			continue
		}
		if !strings.Contains(row, "`"+env+"`") {
			t.Errorf("README row of %s does not name %s", flag, env)
		}
		if def := f.Tag.Get("default"); def != "" && !strings.Contains(row, "`"+def+"`") {
			t.Errorf("README row of %s does not give its default %s", flag, def)
		}
	}
}
