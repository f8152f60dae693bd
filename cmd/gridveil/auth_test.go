package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the servers' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServe runs gridveil serve in-process until the returned stop is
// called; it waits for the role's addr file. A LAG that is not enrolled
// yet, started beside a running CA without a credential of its own, first
// gets one from the CA (gridveil ca issue lag ID), as an operator does
// before a LAG's first start.
func startServe(t *testing.T, data, addrFile string, args ...string) (out *syncBuffer, stop func()) {
	t.Helper()
	if role, id := argOf(args, "--role", ""), argOf(args, "--id", "lag-1"); role == "lag" && argOf(args, "--credential", "") == "" &&
		!exists(filepath.Join(data, "lag-"+id, "cert")) && !exists(filepath.Join(data, "credentials", "lag-"+id+".cred")) &&
		exists(filepath.Join(data, "ca", "addr")) {
		if out, err := runCA("issue", "lag", id, "--data", data); err != nil {
			t.Fatalf("issuing the credential of LAG %s: %v\n%s", id, err, out)
		}
	}
	os.Remove(addrFile)
	out = &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := newServeCmd()
	cmd.SetOut(out)
	cmd.SetErr(out)
	cmd.SetArgs(append([]string{"--data", data, "--addr", "127.0.0.1:0"}, args...))
	cmd.SetContext(ctx)
	done := make(chan error, 1)
	go func() { done <- cmd.Execute() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := os.ReadFile(addrFile); err == nil && len(b) > 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("serve %v exited: %v\n%s", args, err, out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve %v did not start:\n%s", args, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return out, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve %v: %v", args, err)
		}
	}
}

// argOf returns the value of flag in args, or def.
func argOf(args []string, flag, def string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
	}
	return def
}

// issueVehicles has the running CA issue enrolment credentials for
// BV-001..BV-n (gridveil ca issue vehicle --count n), where agent bv reads
// them.
func issueVehicles(t *testing.T, data string, n int) {
	t.Helper()
	if out, err := runCA("issue", "vehicle", "--count", strconv.Itoa(n), "--data", data); err != nil {
		t.Fatalf("issuing %d vehicle credentials: %v\n%s", n, err, out)
	}
}

func runAgent(t *testing.T, args ...string) string {
	t.Helper()
	cmd := newAgentCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append([]string{"bv"}, args...))
	if err := cmd.Execute(); err != nil {
		t.Fatalf("agent %v: %v\n%s", args, err, out.String())
	}
	return out.String()
}

// TestServeAndAgents is the end-to-end test: a CA and a LAG served on
// loopback (random ports) from a data directory; vehicles enrol,
// authenticate and go through charging, full, discharging and charging
// with both credential schemes; the servers restart from their files and
// the vehicles come back, resuming at home with tickets. The LAG's output
// never names a vehicle; the CA's does.
func TestServeAndAgents(t *testing.T) {
	data := t.TempDir()
	start := func() (ca, lag *syncBuffer, stop func()) {
		ca, stopCA := startServe(t, data, filepath.Join(data, "ca", "addr"), "--role", "ca", "--aggregate-min", "2")
		lag, stopLAG := startServe(t, data, filepath.Join(data, "lag-lag-1", "addr"), "--role", "lag")
		// The LAG writes its address before it has linked to the CA;
		// vehicles that come too early are refused, so wait for the link.
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(lag.String(), "synced") && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		return ca, lag, func() { stopLAG(); stopCA() }
	}
	caOut, lagOut, stop := start()
	issueVehicles(t, data, 3)
	cycle := regexp.MustCompile(`charging -> fully-charged -> discharging -> charging`)

	out := runAgent(t, "--data", data, "--count", "3", "--scheme", "pseudonym")
	if n := len(cycle.FindAllString(out, -1)); n != 3 || !strings.Contains(out, "3 of 3 vehicles completed") {
		t.Fatalf("pseudonym cycle:\n%s", out)
	}
	if !strings.Contains(out, "home network, full service; pseudonym") || !strings.Contains(out, "agree confirmed by the CA") {
		t.Fatalf("vehicle views:\n%s", out)
	}
	out = runAgent(t, "--data", data, "--count", "3", "--scheme", "lsag", "--ring", "3", "--resume=false", "--decline", "1")
	if !strings.Contains(out, "3 of 3 vehicles completed") || !strings.Contains(out, "decline confirmed by the CA") || !strings.Contains(out, "; lsag)") {
		t.Fatalf("LSAG cycle:\n%s", out)
	}
	for _, line := range strings.Split(lagOut.String(), "\n") {
		if strings.Contains(line, "BV-0") {
			t.Fatalf("the LAG learned an identity: %s", line)
		}
	}
	for _, want := range []string{`permit: session`, `vehicle "BV-001"`, "discharge-answer", "agree", "decline"} {
		if !strings.Contains(caOut.String(), want) {
			t.Fatalf("the CA's output lacks %q:\n%s", want, caOut.String())
		}
	}
	for _, want := range []string{"authenticated: session", "identity unknown to the LAG", "content unknown to the LAG", "batch"} {
		if !strings.Contains(lagOut.String(), want) {
			t.Fatalf("the LAG's output lacks %q:\n%s", want, lagOut.String())
		}
	}
	stop()

	// Restart from the same files: no new enrolment of the LAG, the
	// vehicles keep their credentials; tickets from before the restart are
	// refused (sessions are not durable) and the vehicles fall back to a
	// full authentication, then resume on the next run.
	_, lagOut, stop = start()
	defer stop()
	if strings.Contains(lagOut.String(), "enrolled") {
		t.Fatal("the LAG enrolled again")
	}
	out = runAgent(t, "--data", data, "--count", "3")
	if n := len(cycle.FindAllString(out, -1)); n != 3 {
		t.Fatalf("after restart:\n%s", out)
	}
	out = runAgent(t, "--data", data, "--count", "3")
	if n := strings.Count(out, "resumed with a ticket"); n != 3 {
		t.Fatalf("no resumption:\n%s", out)
	}
}

func TestServeRoles(t *testing.T) {
	cmd := newServeCmd()
	cmd.SetArgs([]string{"--role", "nope"})
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	err := cmd.Execute()
	if err == nil {
		t.Fatal("unknown role accepted")
	}
	for _, role := range []string{"ca", "lag", "ledger", "nats", "so", "ev"} {
		if !strings.Contains(err.Error(), role) {
			t.Errorf("the refusal of an unknown role does not list %q: %v", role, err)
		}
	}
}

func TestBenchAuthFlags(t *testing.T) {
	for _, args := range [][]string{{"--rings", "0"}, {"--rings", "x"}, {"--vehicles", "3"}} {
		cmd := newBenchAuthCmd()
		cmd.SetArgs(args)
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		if err := cmd.Execute(); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
