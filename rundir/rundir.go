// Package rundir writes a run's output files into a directory that earlier
// runs may have used, so that a directory never mixes two runs: every file
// of a run is written to a temporary file and renamed into place only when
// all succeeded; a manifest records which files the run wrote (with their
// sizes and SHA-256); and the next run into the same directory removes the
// earlier run's files it does not write again.
//
// Files the manifest does not account for (a user's own, or a gridveil
// file edited since it was written) are never removed. Write refuses a
// directory that holds any, naming them and the fix, unless told to write
// beside them (Options.Force). Subdirectories and dot-files are left alone
// and do not count: the default out/ holds other commands' run directories
// (out/home, out/ldp).
package rundir

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ManifestName is the manifest's file name inside a run directory.
const ManifestName = "manifest.json"

// ManifestSchema is the manifest's schema version (docs/FORMATS.md).
const ManifestSchema = "gridveil/manifest/v1"

// Manifest is manifest.json: the command that wrote the directory and every
// file it wrote, so that the next run can tell its predecessor's files from
// anyone else's.
type Manifest struct {
	Schema  string  `json:"schema"`
	Command string  `json:"command"`
	Files   []Entry `json:"files"`
}

// Entry is one file a run wrote.
type Entry struct {
	Name   string `json:"name"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// Options tunes Write.
type Options struct {
	// Command names what wrote the run, e.g. "sim"; it goes into the
	// manifest.
	Command string
	// Force writes into a directory that holds files no gridveil run
	// recorded. They are left in place, except those with the name of a
	// file this run writes, which are replaced.
	Force bool
}

// Result says what Write did.
type Result struct {
	Dir     string
	Written []string // every file written, the manifest included, sorted
	Removed []string // the earlier run's files that this run did not write again
	Foreign []string // names of the files left beside the run with Force (not gridveil's)
}

// Paths returns the written files as paths under the directory.
func (r *Result) Paths() []string {
	out := make([]string, len(r.Written))
	for i, n := range r.Written {
		out[i] = filepath.Join(r.Dir, n)
	}
	return out
}

// ErrForeignFiles is wrapped by the error Write returns for a directory
// holding files that no gridveil run recorded.
var ErrForeignFiles = errors.New("output directory holds files gridveil did not write")

// Check reports, before a long computation, the error Write would give for
// dir: files no gridveil run recorded, unless force. A missing directory
// is fine (Write creates it).
func Check(dir string, force bool) error {
	if force {
		return nil
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	_, foreign, err := inspect(dir)
	if err != nil {
		return err
	}
	return foreignError(dir, foreign)
}

func foreignError(dir string, foreign []foreignFile) error {
	if len(foreign) == 0 {
		return nil
	}
	var list []string
	for _, f := range foreign {
		list = append(list, f.String())
	}
	return fmt.Errorf("%w: %s holds %s; give --out a new or empty directory, remove them, or add --force to write beside them (gridveil never removes files it did not write)",
		ErrForeignFiles, dir, strings.Join(list, ", "))
}

// Write renders every file into dir (created if missing) and records the
// run in dir's manifest. files maps a plain file name to a function that
// writes its content. On any error nothing of this run is left in dir and
// the earlier run's files are untouched.
func Write(dir string, files map[string]func(io.Writer) error, opt Options) (res *Result, err error) {
	names := make([]string, 0, len(files))
	for name := range files {
		if name == "" || name == ManifestName || strings.HasPrefix(name, ".") || strings.ContainsAny(name, `/\`) {
			return nil, fmt.Errorf("rundir: %q is not a plain output file name (no separators, no leading dot, not %s)", name, ManifestName)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating output directory: %w", err)
	}
	prev, foreign, err := inspect(dir)
	if err != nil {
		return nil, err
	}
	if !opt.Force {
		if err := foreignError(dir, foreign); err != nil {
			return nil, err
		}
	}
	res = &Result{Dir: dir}
	for _, f := range foreign {
		if _, ours := files[f.name]; !ours {
			res.Foreign = append(res.Foreign, f.name)
		}
	}

	tmp := map[string]string{}
	defer func() {
		if err != nil {
			for _, t := range tmp {
				os.Remove(t)
			}
		}
	}()
	man := &Manifest{Schema: ManifestSchema, Command: opt.Command}
	for _, name := range names {
		e, t, err := writeTemp(dir, name, files[name])
		if t != "" {
			tmp[name] = t
		}
		if err != nil {
			return nil, err
		}
		man.Files = append(man.Files, e)
	}
	_, t, err := writeTemp(dir, ManifestName, func(w io.Writer) error {
		return json.NewEncoder(w).Encode(man)
	})
	if t != "" {
		tmp[ManifestName] = t
	}
	if err != nil {
		return nil, err
	}
	// The run's files first, the manifest last: until it is renamed the
	// old manifest still describes the old files left in place.
	for _, name := range append(names, ManifestName) {
		if err := os.Rename(tmp[name], filepath.Join(dir, name)); err != nil {
			return nil, fmt.Errorf("writing %s: %w", name, err)
		}
		delete(tmp, name)
	}
	res.Written = append(names, ManifestName)
	slices.Sort(res.Written)
	for _, old := range prev {
		if _, again := files[old]; again {
			continue
		}
		if err := os.Remove(filepath.Join(dir, old)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return res, fmt.Errorf("removing the earlier run's %s: %w", old, err)
		}
		res.Removed = append(res.Removed, old)
	}
	return res, nil
}

// inspect reads dir's manifest and sorts its regular files into the
// earlier run's, unchanged since it wrote them (prev), and the rest
// (foreign, each with the reason). A missing manifest means no file is
// gridveil's; an unreadable one is itself foreign.
func inspect(dir string) (prev []string, foreign []foreignFile, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("reading output directory: %w", err)
	}
	recorded := map[string]Entry{}
	if data, err := os.ReadFile(filepath.Join(dir, ManifestName)); err == nil {
		var m Manifest
		if json.Unmarshal(data, &m) != nil || m.Schema != ManifestSchema {
			foreign = append(foreign, foreignFile{ManifestName, "not a " + ManifestSchema + " manifest"})
		} else {
			for _, e := range m.Files {
				recorded[e.Name] = e
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("reading %s: %w", ManifestName, err)
	}
	for _, de := range ents {
		name := de.Name()
		if name == ManifestName || strings.HasPrefix(name, ".") || de.IsDir() {
			continue
		}
		e, ok := recorded[name]
		if !ok {
			foreign = append(foreign, foreignFile{name, ""})
			continue
		}
		same, err := matches(filepath.Join(dir, name), e)
		if err != nil {
			return nil, nil, err
		}
		if !same {
			foreign = append(foreign, foreignFile{name, "changed since gridveil wrote it"})
			continue
		}
		prev = append(prev, name)
	}
	return prev, foreign, nil
}

// foreignFile is a file of the directory that no manifest accounts for.
type foreignFile struct{ name, why string }

func (f foreignFile) String() string {
	if f.why == "" {
		return f.name
	}
	return f.name + " (" + f.why + ")"
}

// matches tells whether the file at path still has e's size and hash.
func matches(path string, e Entry) (bool, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return false, fmt.Errorf("checking the earlier run's %s: %w", e.Name, err)
	}
	if !fi.Mode().IsRegular() || fi.Size() != e.Bytes {
		return false, nil
	}
	fh, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("checking the earlier run's %s: %w", e.Name, err)
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return false, fmt.Errorf("checking the earlier run's %s: %w", e.Name, err)
	}
	return hex.EncodeToString(h.Sum(nil)) == e.SHA256, nil
}

// writeTemp renders one file into a temporary file in dir and returns its
// manifest entry and the temporary path (set even on error, for cleanup).
func writeTemp(dir, name string, write func(io.Writer) error) (Entry, string, error) {
	fh, err := os.CreateTemp(dir, "."+name+".*.tmp")
	if err != nil {
		return Entry{}, "", fmt.Errorf("writing %s: %w", name, err)
	}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(fh, h)}
	bw := bufio.NewWriterSize(cw, 1<<20)
	werr := write(bw)
	if werr == nil {
		werr = bw.Flush()
	}
	if werr == nil {
		werr = fh.Chmod(0o644) // CreateTemp makes 0600; results are for sharing
	}
	cerr := fh.Close()
	if werr != nil {
		return Entry{}, fh.Name(), fmt.Errorf("writing %s: %w", name, werr)
	}
	if cerr != nil {
		return Entry{}, fh.Name(), fmt.Errorf("writing %s: %w", name, cerr)
	}
	return Entry{Name: name, Bytes: cw.n, SHA256: hex.EncodeToString(h.Sum(nil))}, fh.Name(), nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
