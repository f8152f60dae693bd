package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// freePort returns a loopback address nothing listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestServeLedger runs gridveil serve --role ledger and asks its RPC for
// the chain's height until blocks are being committed: the role is wired
// to a real validator, not just registered.
func TestServeLedger(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a CometBFT node")
	}
	data := t.TempDir()
	rpc, p2p := freePort(t), freePort(t)
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := newServeCmd()
	cmd.SetOut(out)
	cmd.SetErr(out)
	cmd.SetArgs([]string{"--role", "ledger", "--data", data, "--addr", rpc, "--p2p", "tcp://" + p2p, "--block", "100ms"})
	cmd.SetContext(ctx)
	done := make(chan error, 1)
	go func() { done <- cmd.Execute() }()

	height := 0
	deadline := time.Now().Add(30 * time.Second)
	for height < 2 {
		select {
		case err := <-done:
			t.Fatalf("serve --role ledger exited: %v\n%s", err, out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no blocks within 30 s (height %d):\n%s", height, out)
		}
		time.Sleep(100 * time.Millisecond)
		height = rpcHeight("http://" + rpc + "/status")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("stopping: %v\n%s", err, out)
	}
	if !strings.Contains(out.String(), "stopped at height") {
		t.Fatalf("no stop line:\n%s", out)
	}
	if !strings.Contains(out.String(), filepath.Join(data, "ledger")) {
		t.Fatalf("home is not --data/ledger:\n%s", out)
	}
	// CometBFT's log is kept in the home, at info level: committed blocks
	// are there, per-message debug lines are not.
	cl, err := os.ReadFile(filepath.Join(data, "ledger", ledgerLogFile))
	if err != nil || !strings.Contains(string(cl), "committed state") || strings.Contains(string(cl), "D[") {
		t.Fatalf("CometBFT's log in the home (%v):\n%.2000s", err, cl)
	}
}

// rpcHeight is the latest block height a CometBFT RPC reports, or 0.
func rpcHeight(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var st struct {
		Result struct {
			SyncInfo struct {
				Height string `json:"latest_block_height"`
			} `json:"sync_info"`
		} `json:"result"`
	}
	if json.NewDecoder(resp.Body).Decode(&st) != nil {
		return 0
	}
	h, _ := strconv.Atoi(st.Result.SyncInfo.Height)
	return h
}
