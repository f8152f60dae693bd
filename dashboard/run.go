package dashboard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gridveil/gridveil/day"
	"github.com/gridveil/gridveil/runfile"
)

// ErrRunDir is wrapped by errors about the run directory as a whole.
var ErrRunDir = errors.New("run directory")

// FileStatus says what the dashboard found of one file of a run.
type FileStatus struct {
	Name    string `json:"name"`
	Present bool   `json:"present"`
	Schema  string `json:"schema,omitempty"`
	// Error, when set, says why a present file could not be used and what
	// to do; the views that need it say so instead of showing its data.
	Error string `json:"error,omitempty"`
}

// runFiles are the files of a finished run the dashboard reads, with the
// schema each must carry (a prefix: any version the code below reads).
// events.log is plain text and has no schema.
var runFiles = []struct{ name, schema, writer string }{
	{"instance.json", "gridveil/instance/v1", "gridveil sim or up"},
	{"solution.json", "gridveil/solution/v1", "gridveil sim or up"},
	{"so.json", "gridveil/so-result/v1", "gridveil up"},
	{"convergence.json", runfile.ConvergenceSchema, "gridveil sim or up"},
	{"privacy.json", "gridveil/privacy/v1", "gridveil sim --privacy-compare"},
	{"so_view.json", "gridveil/so-view/v1", "gridveil sim --privacy M --dump-view so"},
	{"market.json", "gridveil/market/v2", "gridveil sim --market"},
	{"ldp_baseline.json", "gridveil/ldp-baseline/v1", "gridveil sim --baseline ldp"},
	{"ldp.json", "gridveil/ldp/v1", "gridveil ldp"},
	{"home.json", "gridveil/home/v1", "gridveil home"},
	{"events.log", "", "gridveil up"},
}

// Run reads a finished run's directory. Files are read when a view asks
// for them and kept while their size and modification time stay the same,
// so the dashboard shows a run directory that a later run rewrites.
type Run struct {
	dir   string
	mu    sync.Mutex
	cache map[string]cacheEntry
}

type cacheEntry struct {
	mod  time.Time
	size int64
	val  any
	st   FileStatus
}

// OpenRun checks that dir is a directory and returns its reader. An empty
// dir gives a run with no files (the dashboard then shows only what is
// live).
func OpenRun(dir string) (*Run, error) {
	if dir != "" {
		fi, err := os.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("%w %s: %w; give --run the --out directory of a gridveil sim, up, home or ldp run", ErrRunDir, dir, err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("%w %s is a file, not a directory; give --run the --out directory of a gridveil run", ErrRunDir, dir)
		}
	}
	return &Run{dir: dir, cache: map[string]cacheEntry{}}, nil
}

// Dir is the run directory ("" when none).
func (r *Run) Dir() string { return r.dir }

// load decodes the run's file name into a new T, checking its schema. A
// missing file gives (nil, status with Present false); a damaged one gives
// (nil, status with Error set).
func load[T any](r *Run, name string) (*T, FileStatus) {
	st := FileStatus{Name: name}
	if r.dir == "" {
		return nil, st
	}
	want, writer := "", ""
	for _, f := range runFiles {
		if f.name == name {
			want, writer = f.schema, f.writer
		}
	}
	path := filepath.Join(r.dir, name)
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, st
	}
	st.Present = true
	if err != nil {
		st.Error = fmt.Sprintf("%s: %v", name, err)
		return nil, st
	}
	r.mu.Lock()
	c, ok := r.cache[name]
	r.mu.Unlock()
	if ok && c.mod.Equal(fi.ModTime()) && c.size == fi.Size() {
		v, _ := c.val.(*T)
		return v, c.st
	}
	v, st := decodeFile[T](path, name, want, writer, st)
	r.mu.Lock()
	r.cache[name] = cacheEntry{mod: fi.ModTime(), size: fi.Size(), val: v, st: st}
	r.mu.Unlock()
	return v, st
}

func decodeFile[T any](path, name, want, writer string, st FileStatus) (*T, FileStatus) {
	data, err := os.ReadFile(path)
	if err != nil {
		st.Error = fmt.Sprintf("%s: %v", name, err)
		return nil, st
	}
	var head struct {
		Schema string `json:"schema"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		st.Error = fmt.Sprintf("%s is not valid JSON (%v): was it cut short or edited? Write it again with %s", name, err, writer)
		return nil, st
	}
	st.Schema = head.Schema
	if head.Schema != want {
		st.Error = fmt.Sprintf("%s has schema %q; this dashboard reads %q: write it again with this gridveil's %s", name, head.Schema, want, writer)
		return nil, st
	}
	v := new(T)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		st.Error = fmt.Sprintf("%s does not match %s (%v): write it again with %s", name, want, err, writer)
		return nil, st
	}
	return v, st
}

// readEvents reads events.log (at most its last maxEventBytes).
func (r *Run) readEvents() ([]string, FileStatus) {
	st := FileStatus{Name: "events.log"}
	if r.dir == "" {
		return nil, st
	}
	f, err := os.Open(filepath.Join(r.dir, "events.log"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, st
	}
	st.Present = true
	if err != nil {
		st.Error = fmt.Sprintf("events.log: %v", err)
		return nil, st
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		st.Error = fmt.Sprintf("events.log: %v", err)
		return nil, st
	}
	off := fi.Size() - maxEventBytes
	if off < 0 {
		off = 0
	}
	buf := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		st.Error = fmt.Sprintf("events.log: %v", err)
		return nil, st
	}
	lines := strings.Split(strings.TrimRight(string(buf), "\n"), "\n")
	if off > 0 && len(lines) > 0 {
		lines = lines[1:] // the first is cut
	}
	return lines, st
}

const maxEventBytes = 4 << 20

// Files lists every file the dashboard knows with what it found of it.
func (r *Run) Files() []FileStatus {
	var out []FileStatus
	for _, f := range runFiles {
		var st FileStatus
		switch f.name {
		case "instance.json":
			_, st = load[instanceFile](r, f.name)
		case "solution.json":
			_, st = load[solutionFile](r, f.name)
		case "so.json":
			_, st = load[day.SOResult](r, f.name)
		case "convergence.json":
			_, st = load[runfile.Convergence](r, f.name)
		case "privacy.json":
			_, st = load[runfile.Privacy](r, f.name)
		case "so_view.json":
			_, st = load[runfile.SOViewFile](r, f.name)
		case "market.json":
			_, st = load[runfile.Market](r, f.name)
		case "ldp_baseline.json":
			_, st = load[ldpBaselineFile](r, f.name)
		case "ldp.json":
			_, st = load[ldpFile](r, f.name)
		case "home.json":
			_, st = load[homeFile](r, f.name)
		case "events.log":
			_, st = r.readEvents()
		}
		out = append(out, st)
	}
	return out
}

// absentNote is the sentence a view shows for a file it needs and lacks.
func absentNote(st FileStatus, what string) string {
	if st.Error != "" {
		return st.Error
	}
	for _, f := range runFiles {
		if f.name == st.Name {
			return fmt.Sprintf("%s: this run has no %s (written by %s)", what, st.Name, f.writer)
		}
	}
	return fmt.Sprintf("%s: this run has no %s", what, st.Name)
}
