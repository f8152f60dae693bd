package sim

import (
	"bytes"
	"io"
	"testing"

	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/scenario"
)

// load builds a built-in scenario with its own seed and fleet.
func load(t *testing.T, name string) (*charging.Problem, *scenario.Meta) {
	t.Helper()
	p, m, err := Load(name, 0, false, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p, m
}

// runDay runs a day of a built-in scenario with sim's defaults as edit
// changes them.
func runDay(t *testing.T, name string, edit func(*Config)) *Day {
	t.Helper()
	p, m := load(t, name)
	c := Defaults()
	if edit != nil {
		edit(&c)
	}
	d, err := RunDay(p, m, c)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// render writes every file of a run into memory, as rundir would write
// them into a directory.
func render(t *testing.T, files map[string]func(io.Writer) error) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for name, write := range files {
		var b bytes.Buffer
		if err := write(&b); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = b.Bytes()
	}
	return out
}

// dayFiles renders a day's files.
func dayFiles(t *testing.T, d *Day) map[string][]byte {
	t.Helper()
	return render(t, d.Files(RunInfo{}))
}
