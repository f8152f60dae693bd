package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gridveil/gridveil/rundir"
)

// dirFiles lists the regular files of dir.
func dirFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestSimOutputDirectory: a run into a directory of an earlier run leaves
// only its own files (the obfuscation run's so_view.json does not survive a
// later market run), lists every one of them in its summary and manifest,
// and records every run parameter in run.json.
func TestSimOutputDirectory(t *testing.T) {
	dir := t.TempDir()
	_, err := run(t, "sim", "--privacy", "obfuscation", "--iterations", "20", "--dump-view", "so", "--obf-m", "7", "--obf-sigma", "2.5", "--out", dir, "-q")
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 3 {
		t.Fatalf("obfuscation run: %v", err)
	}
	if !slices.Contains(dirFiles(t, dir), "so_view.json") {
		t.Fatal("no so_view.json written")
	}
	var r1 struct {
		Flags  map[string]string  `json:"flags"`
		Params map[string]float64 `json:"privacy_params"`
	}
	readJSON(t, filepath.Join(dir, "run.json"), &r1)
	if r1.Flags["obf-m"] != "7" || r1.Flags["obf-sigma"] != "2.5" || r1.Flags["mask-drop"] != "0" || r1.Flags["iterations"] != "20" || r1.Params["m"] != 7 || r1.Params["sigma_kw"] != 2.5 {
		t.Fatalf("run.json does not record the run's parameters: %v %v", r1.Flags, r1.Params)
	}
	out, err := run(t, "sim", "--market", "--out", dir)
	if err != nil {
		t.Fatal(err)
	}
	files := dirFiles(t, dir)
	want := []string{"convergence.json", "instance.json", "manifest.json", "market.json", "report.html", "run.json", "solution.json"}
	if !slices.Equal(files, want) {
		t.Fatalf("after the market run the directory holds %v, want %v", files, want)
	}
	for _, f := range files {
		if !strings.Contains(out, filepath.Join(dir, f)) {
			t.Errorf("summary does not list %s:\n%s", f, out)
		}
	}
	if !strings.Contains(out, "removed the earlier run's so_view.json") {
		t.Errorf("summary does not say the stale file was removed:\n%s", out)
	}
	var m rundir.Manifest
	readJSON(t, filepath.Join(dir, "manifest.json"), &m)
	var listed []string
	for _, e := range m.Files {
		listed = append(listed, e.Name)
	}
	if m.Command != "sim" || !slices.Equal(append(listed, "manifest.json"), []string{"convergence.json", "instance.json", "market.json", "report.html", "run.json", "solution.json", "manifest.json"}) {
		t.Fatalf("manifest %+v", m)
	}
}

// TestOutputDirectoryRefused: every command that writes a run directory
// refuses one holding files gridveil did not write, names them and the
// fix, and changes nothing; --force writes beside them and keeps them.
func TestOutputDirectoryRefused(t *testing.T) {
	for _, c := range [][]string{
		{"sim"},
		{"home", "--homes", "2"},
		{"ldp", "--meters", "200", "--trials", "2", "--epsilons", "1", "--mechanism", "grr"},
	} {
		dir := t.TempDir()
		mine := filepath.Join(dir, "solution.json") // a user's file with a gridveil name
		if err := os.WriteFile(mine, []byte("my notes"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := run(t, append(c, "--out", dir, "-q")...)
		if !errors.Is(err, rundir.ErrForeignFiles) || !strings.Contains(err.Error(), "solution.json") || !strings.Contains(err.Error(), "--force") {
			t.Fatalf("%s: %v, want a refusal naming solution.json and --force", c[0], err)
		}
		if files := dirFiles(t, dir); !slices.Equal(files, []string{"solution.json"}) {
			t.Fatalf("%s: a refused run left %v", c[0], files)
		}
		if _, err := run(t, append(c, "--out", dir, "-q", "--force")...); err != nil {
			t.Fatalf("%s --force: %v", c[0], err)
		}
		data, _ := os.ReadFile(mine)
		var m rundir.Manifest
		readJSON(t, filepath.Join(dir, "manifest.json"), &m)
		if c[0] != "sim" && string(data) != "my notes" {
			t.Fatalf("%s --force replaced a file it does not write", c[0])
		}
		if m.Command != c[0] || len(m.Files) == 0 {
			t.Fatalf("%s: manifest %+v", c[0], m)
		}
		if c[0] == "sim" && !json.Valid(data) {
			t.Fatal("sim --force did not replace solution.json, a file it writes")
		}
	}
}
