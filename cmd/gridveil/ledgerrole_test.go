package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLedgerRole starts a demo ledger node on a new home, stops it, and
// starts it again: the keys and the chain survive.
func TestLedgerRole(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a CometBFT node")
	}
	home := t.TempDir()
	for i := 0; i < 2; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var out bytes.Buffer
		err := runLedger(ctx, &out, ledgerOptions{home: home, block: 100 * time.Millisecond})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "stopped at height") {
			t.Fatalf("run %d: %s", i, out.String())
		}
	}
	if fi, err := os.Stat(filepath.Join(home, "keys.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("demo keys: %v", err)
	}
	if _, err := os.Stat(filepath.Join(home, "app", "state.db")); err != nil {
		t.Fatalf("no persisted state: %v", err)
	}
}
