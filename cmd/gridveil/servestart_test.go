package main

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// goServe starts gridveil serve in-process without waiting for anything.
// exited is closed when it returns; stop cancels it (if still running) and
// returns what it returned, as often as it is called.
func goServe(data string, args ...string) (out *syncBuffer, exited <-chan struct{}, stop func() error) {
	out = &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := newServeCmd()
	cmd.SetOut(out)
	cmd.SetErr(out)
	cmd.SetArgs(append([]string{"--data", data}, args...))
	cmd.SetContext(ctx)
	done := make(chan struct{})
	var err error
	go func() { err = cmd.Execute(); close(done) }()
	return out, done, func() error {
		cancel()
		<-done
		return err
	}
}

// waitFor polls cond every 10 ms until it holds or the bound passes.
func waitFor(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// TestLAGStartedBeforeCA is serve --role ca & serve --role lag & losing the
// race: on a fresh data directory the LAG starts first, says it waits for
// the CA, and comes up (enrolled, linked, admitting vehicles) once the CA
// does.
func TestLAGStartedBeforeCA(t *testing.T) {
	data := t.TempDir()
	lagOut, lagDone, stopLAG := goServe(data, "--role", "lag", "--addr", "127.0.0.1:0", "--ca-wait", "60s")
	defer stopLAG()
	waitFor(t, 20*time.Second, "the LAG to say it waits", func() bool {
		select {
		case <-lagDone:
			t.Fatalf("the LAG exited without the CA: %v\n%s", stopLAG(), lagOut)
		default:
		}
		return strings.Contains(lagOut.String(), "waiting up to 1m0s for the CA")
	})
	if exists(filepath.Join(data, "lag-lag-1", "addr")) {
		t.Fatal("the LAG recorded an address before it could serve")
	}
	_, stopCA := startServe(t, data, filepath.Join(data, "ca", "addr"), "--role", "ca", "--addr", "127.0.0.1:0", "--aggregate-min", "2")
	defer stopCA()
	// With the CA up, the LAG waits for its enrolment credential, which
	// the operator issues now.
	waitFor(t, 20*time.Second, "the LAG to say it waits for its credential", func() bool {
		return strings.Contains(lagOut.String(), "waiting up to 1m0s for its enrolment credential")
	})
	if out, err := runCA("issue", "lag", "lag-1", "--data", data); err != nil {
		t.Fatalf("issue lag: %v\n%s", err, out)
	}
	issueVehicles(t, data, 2)
	waitFor(t, 30*time.Second, "the LAG to link to the CA", func() bool {
		return strings.Contains(lagOut.String(), "synced") && exists(filepath.Join(data, "lag-lag-1", "addr"))
	})
	if out := runAgent(t, "--data", data, "--count", "2", "--scheme", "pseudonym"); !strings.Contains(out, "2 of 2 vehicles completed") {
		t.Fatalf("vehicles at the LAG that waited:\n%s", out)
	}
	if err := stopLAG(); err != nil {
		t.Fatalf("the LAG: %v\n%s", err, lagOut)
	}
}

// TestLAGGivesUpWaitingForCA: with no CA, a LAG gives up after --ca-wait,
// says what to start, and leaves no directory behind.
func TestLAGGivesUpWaitingForCA(t *testing.T) {
	data := filepath.Join(t.TempDir(), "fresh")
	out, done, stop := goServe(data, "--role", "lag", "--addr", "127.0.0.1:0", "--ca-wait", "300ms")
	defer stop()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("the LAG did not give up:\n%s", out)
	}
	err := stop()
	if err == nil || !strings.Contains(err.Error(), "gave up waiting") || !strings.Contains(err.Error(), "gridveil serve --role ca --data "+data) {
		t.Fatalf("giving up: %v\n%s", err, out)
	}
	if exists(data) {
		t.Fatalf("a LAG that never started left %s behind", data)
	}

	// The CA's files exist but it does not run: the LAG has keys to
	// enrol with, retries, gives up, and takes its fresh keys back.
	data = t.TempDir()
	startCA, stopCA := startServe(t, data, filepath.Join(data, "ca", "addr"), "--role", "ca", "--addr", "127.0.0.1:0")
	_ = startCA
	if out, err := runCA("issue", "lag", "lag-1", "--data", data); err != nil {
		t.Fatalf("issue lag: %v\n%s", err, out)
	}
	stopCA()
	out, done, stop = goServe(data, "--role", "lag", "--addr", "127.0.0.1:0", "--ca-wait", "300ms")
	defer stop()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("the LAG did not give up:\n%s", out)
	}
	err = stop()
	if err == nil || !strings.Contains(err.Error(), "gave up waiting") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("giving up on a stopped CA: %v\n%s", err, out)
	}
	if exists(filepath.Join(data, "lag-lag-1")) {
		t.Fatal("a LAG that never enrolled left its keys behind")
	}
}

// TestCAStartFailureLeavesNoKeys: a CA that cannot listen (the port is
// taken) says so and what to do, and writes no key: a second CA on the same
// fresh directory would otherwise hand out keys no running CA holds.
func TestCAStartFailureLeavesNoKeys(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	data := filepath.Join(t.TempDir(), "fresh")
	_, _, stop := goServe(data, "--role", "ca", "--addr", busy.Addr().String())
	err = stop()
	if err == nil || !strings.Contains(err.Error(), "address already in use") || !strings.Contains(err.Error(), "--addr") {
		t.Fatalf("CA on a taken port: %v", err)
	}
	if exists(data) {
		t.Fatalf("a CA that did not start left %s behind", data)
	}
}

// TestFreshDirUndo: what a failed start takes back is only what it wrote
// in directories it created.
func TestFreshDirUndo(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	dir := filepath.Join(root, "ca")
	f := newFreshDir(root, dir)
	os.MkdirAll(dir, 0o700)
	for _, name := range []string{"ca.key", "public.key"} {
		os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600)
	}
	f.undo("ca.key", "public.key", "addr")
	if exists(root) {
		t.Fatal("undo left the fresh directories")
	}

	// A directory that existed before keeps everything.
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "ca.key"), []byte("old"), 0o600)
	newFreshDir(root, dir).undo("ca.key")
	if b, err := os.ReadFile(filepath.Join(dir, "ca.key")); err != nil || string(b) != "old" {
		t.Fatalf("undo touched an older key: %q %v", b, err)
	}
	// A fresh role directory inside an older root: the root stays, and so
	// does a file the start did not write.
	dir2 := filepath.Join(root, "lag-x")
	f = newFreshDir(root, dir2)
	os.MkdirAll(dir2, 0o700)
	os.WriteFile(filepath.Join(dir2, "lag.key"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(dir2, "notes.txt"), []byte("mine"), 0o600)
	f.undo("lag.key")
	if exists(filepath.Join(dir2, "lag.key")) || !exists(filepath.Join(dir2, "notes.txt")) || !exists(root) {
		t.Fatal("undo removed the wrong files")
	}
}
