package authnet

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Store is a data directory whose files are replaced atomically.
type Store struct {
	dir string
}

// OpenStore creates dir (mode 0700) if needed.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	return &Store{dir: dir}, nil
}

// Dir is the directory.
func (s *Store) Dir() string { return s.dir }

// Path is the path of a file in the store.
func (s *Store) Path(name string) string { return filepath.Join(s.dir, name) }

// Read returns a file's contents; a missing file is fs.ErrNotExist.
func (s *Store) Read(name string) ([]byte, error) {
	b, err := os.ReadFile(s.Path(name))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return b, nil
}

// Exists reports whether a file exists.
func (s *Store) Exists(name string) bool {
	_, err := os.Stat(s.Path(name))
	return err == nil
}

// Write replaces a file atomically: a temporary file in the same
// directory is written, synced and renamed over the old one, and the
// directory is synced, so that after a crash the file holds either the old
// or the new contents.
func (s *Store) Write(name string, data []byte, perm fs.FileMode) (err error) {
	if strings.ContainsRune(name, os.PathSeparator) {
		return fmt.Errorf("store: file name %q has a path separator", name)
	}
	f, err := os.CreateTemp(s.dir, "."+name+".*.tmp")
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err = os.Rename(f.Name(), s.Path(name)); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if d, derr := os.Open(s.dir); derr == nil {
		// Not every file system can sync a directory; the rename is done.
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// isNotExist reports whether err is a missing file.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
