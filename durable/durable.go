// Package durable writes files so that a crash leaves either the old
// content or the new, never a torn file, and so that what a party has
// confirmed is on disk: the data goes to a temporary file in the same
// directory, is fsync'd, renamed over the target, and the directory is
// fsync'd so the rename itself survives a power loss.
//
// The SO's state (package service), the parties' files and addresses
// (package day) use it; a confirmation that leaves a process is only sent
// after WriteFile returned.
package durable

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile replaces path with data, durably, with permissions perm. The
// directory is created if missing. On error nothing at path has changed
// and no temporary file is left.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = f.Chmod(perm)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
