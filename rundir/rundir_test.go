package rundir

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func content(s string) func(io.Writer) error {
	return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestWriteManifest: a run writes its files and a manifest that lists each
// with its true size and SHA-256.
func TestWriteManifest(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new")
	res, err := Write(dir, map[string]func(io.Writer) error{"b.json": content("{}\n"), "a.html": content("<p>")}, Options{Command: "sim"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a.html", "b.json", ManifestName}; !slices.Equal(res.Written, want) || !slices.Equal(names(t, dir), want) {
		t.Fatalf("written %v, directory %v, want %v", res.Written, names(t, dir), want)
	}
	var m Manifest
	if err := json.Unmarshal([]byte(read(t, filepath.Join(dir, ManifestName))), &m); err != nil {
		t.Fatal(err)
	}
	if m.Schema != ManifestSchema || m.Command != "sim" || len(m.Files) != 2 {
		t.Fatalf("manifest %+v", m)
	}
	for _, e := range m.Files {
		data := read(t, filepath.Join(dir, e.Name))
		sum := sha256.Sum256([]byte(data))
		if e.Bytes != int64(len(data)) || e.SHA256 != hex.EncodeToString(sum[:]) {
			t.Fatalf("manifest entry %+v does not describe %q", e, data)
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, "a.html")); fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, want 0644", fi.Mode().Perm())
	}
}

// TestWriteRemovesEarlierRun: a second run into the same directory removes
// the first run's files it does not write again (the stale so_view.json of
// an obfuscation run beside a later market run), and leaves subdirectories
// and dot-files alone.
func TestWriteRemovesEarlierRun(t *testing.T) {
	dir := t.TempDir()
	if _, err := Write(dir, map[string]func(io.Writer) error{"solution.json": content("1"), "so_view.json": content("view")}, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "home"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".keep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Write(dir, map[string]func(io.Writer) error{"solution.json": content("2"), "market.json": content("m")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{".keep", "home", ManifestName, "market.json", "solution.json"}; !slices.Equal(names(t, dir), want) {
		t.Fatalf("directory %v, want %v", names(t, dir), want)
	}
	if !slices.Equal(res.Removed, []string{"so_view.json"}) || read(t, filepath.Join(dir, "solution.json")) != "2" {
		t.Fatalf("removed %v, solution %q", res.Removed, read(t, filepath.Join(dir, "solution.json")))
	}
}

// TestWriteRefusesForeignFiles: files no manifest accounts for (a user's
// own, or a gridveil file edited since) are named in the error with the
// fix, and nothing is written or removed; with Force the run is written
// beside them and they are kept.
func TestWriteRefusesForeignFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := Write(dir, map[string]func(io.Writer) error{"solution.json": content("1"), "report.html": content("r")}, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.html"), []byte("edited"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := names(t, dir)
	if err := Check(dir, false); !errors.Is(err, ErrForeignFiles) || !strings.Contains(err.Error(), "notes.txt") {
		t.Fatalf("Check: %v, want the foreign file named", err)
	}
	if Check(dir, true) != nil || Check(filepath.Join(dir, "absent"), false) != nil {
		t.Fatal("Check refuses with force, or a directory that does not exist yet")
	}
	_, err := Write(dir, map[string]func(io.Writer) error{"solution.json": content("2")}, Options{})
	if !errors.Is(err, ErrForeignFiles) {
		t.Fatalf("got %v, want ErrForeignFiles", err)
	}
	for _, want := range []string{"notes.txt", "report.html (changed since gridveil wrote it)", "--force", "--out"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if !slices.Equal(names(t, dir), before) || read(t, filepath.Join(dir, "solution.json")) != "1" {
		t.Fatalf("a refused run changed the directory: %v", names(t, dir))
	}
	res, err := Write(dir, map[string]func(io.Writer) error{"solution.json": content("2")}, Options{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if read(t, filepath.Join(dir, "notes.txt")) != "mine" || read(t, filepath.Join(dir, "report.html")) != "edited" || read(t, filepath.Join(dir, "solution.json")) != "2" {
		t.Fatal("--force lost a file gridveil did not write, or did not write the run")
	}
	if !slices.Equal(res.Foreign, []string{"notes.txt", "report.html"}) || len(res.Removed) != 0 {
		t.Fatalf("foreign %v, removed %v", res.Foreign, res.Removed)
	}
}

// TestWriteFailureLeavesNothing: a file that fails to render leaves no
// temporary or new file, and the earlier run's files and manifest intact.
func TestWriteFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	if _, err := Write(dir, map[string]func(io.Writer) error{"a.json": content("old")}, Options{}); err != nil {
		t.Fatal(err)
	}
	man := read(t, filepath.Join(dir, ManifestName))
	boom := errors.New("disk full")
	_, err := Write(dir, map[string]func(io.Writer) error{
		"a.json": content("new"),
		"b.json": func(w io.Writer) error { io.WriteString(w, "half"); return boom },
	}, Options{})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "b.json") {
		t.Fatalf("got %v, want the cause and the file named", err)
	}
	if want := []string{"a.json", ManifestName}; !slices.Equal(names(t, dir), want) || read(t, filepath.Join(dir, "a.json")) != "old" || read(t, filepath.Join(dir, ManifestName)) != man {
		t.Fatalf("after a failed run: %v", names(t, dir))
	}
	if _, err := Write(dir, map[string]func(io.Writer) error{"../escape": content("x")}, Options{}); err == nil || !strings.Contains(err.Error(), "plain output file name") {
		t.Fatalf("a path as a file name: %v", err)
	}
}
