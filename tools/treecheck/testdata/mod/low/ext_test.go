package low_test

import (
	"testing"

	"example.com/m/cmd/tool"
)

func TestExternal(t *testing.T) { _ = tool.Name() }
