package main

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gridveil/gridveil/auth/authnet"
)

// runCA runs gridveil ca with args and returns its output and error.
func runCA(args ...string) (string, error) {
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"ca"}, args...))
	err := root.Execute()
	return out.String(), err
}

// runAgentErr runs gridveil agent bv and returns its output and error.
func runAgentErr(args ...string) (string, error) {
	cmd := newAgentCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append([]string{"bv"}, args...))
	err := cmd.Execute()
	return out.String(), err
}

// TestCATraceAndRevoke is the operator's end to end: a CA and a LAG served
// through the CLI on loopback, vehicles through full cycles (pseudonym,
// LSAG, resumption); the LAG keeps evidence that names no one; gridveil ca
// trace turns each record into the vehicle the CA permitted for that
// session, also after the CA restarted and forgot its sessions; a LAG's
// own key cannot trace; gridveil ca revoke makes the LAG refuse the
// vehicle by itself; bad input gives clear errors.
func TestCATraceAndRevoke(t *testing.T) {
	data := t.TempDir()
	start := func() (ca, lag *syncBuffer, stop func()) {
		ca, stopCA := startServe(t, data, filepath.Join(data, "ca", "addr"), "--role", "ca", "--aggregate-min", "2")
		lag, stopLAG := startServe(t, data, filepath.Join(data, "lag-lag-1", "addr"), "--role", "lag")
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(lag.String(), "synced") && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		return ca, lag, func() { stopLAG(); stopCA() }
	}
	caOut, _, stop := start()
	issueVehicles(t, data, 3)
	runAgent(t, "--data", data, "--count", "3", "--scheme", "pseudonym")
	runAgent(t, "--data", data, "--count", "3", "--scheme", "lsag", "--ring", "3", "--resume=false")
	if out := runAgent(t, "--data", data, "--count", "3"); strings.Count(out, "resumed with a ticket") != 3 {
		t.Fatalf("no resumption:\n%s", out)
	}
	stop()

	evFile := filepath.Join(data, "lag-lag-1", authnet.EvidenceFile)
	raw, err := os.ReadFile(evFile)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("BV-0")) {
		t.Fatal("the LAG's evidence names a vehicle")
	}
	recs, err := authnet.ReadEvidence(evFile)
	if err != nil || len(recs) != 9 {
		t.Fatalf("%d evidence records, %v", len(recs), err)
	}
	// Who the CA permitted (or resumed) for each session, by the first 4
	// bytes of its binding.
	truth := map[string]string{}
	for _, m := range regexp.MustCompile(`(?:permit: session|resumed\]?:? session) ([0-9a-f]{8})[^"]*"?[^"]*"?: vehicle "([^"]+)"`).FindAllStringSubmatch(caOut.String(), -1) {
		truth[m[1]] = m[2]
	}
	for _, m := range regexp.MustCompile(`session ([0-9a-f]{8}): vehicle "([^"]+)" resumed`).FindAllStringSubmatch(caOut.String(), -1) {
		truth[m[1]] = m[2]
	}
	if len(truth) != 9 {
		t.Fatalf("the CA's output names %d sessions:\n%s", len(truth), caOut)
	}

	// Restarted, the CA has forgotten every session; the evidence still
	// traces, resumptions through their origin.
	caOut, lagOut, stop := start()
	defer stop()
	out, err := runCA("trace", "--data", data, "--all")
	if err != nil {
		t.Fatalf("trace --all: %v\n%s", err, out)
	}
	traced := regexp.MustCompile(`session ([0-9a-f]{8})[0-9a-f]* at lag-1, [^:]+(?::[^:]+)*?: (BV-\d+)\n`).FindAllStringSubmatch(out, -1)
	if len(traced) != 9 || strings.Count(out, "resumed from") != 3 {
		t.Fatalf("trace --all:\n%s", out)
	}
	for _, m := range traced {
		if truth[m[1]] != m[2] {
			t.Errorf("session %s traced to %s, the CA permitted %q", m[1], m[2], truth[m[1]])
		}
	}
	one := hex.EncodeToString(recs[0].Binding[:])[:10]
	if out, err := runCA("trace", "--data", data, one); err != nil || !strings.HasSuffix(strings.TrimSpace(out), truth[one[:8]]) {
		t.Fatalf("trace %s: %v\n%s", one, err, out)
	}

	// A LAG cannot trace: its own certified Noise key is not the admin
	// key, and its data directory holds no admin key.
	lagKey, err := os.ReadFile(filepath.Join(data, "lag-lag-1", "lag.key"))
	if err != nil {
		t.Fatal(err)
	}
	asLAG := filepath.Join(t.TempDir(), "lag-noise.key")
	os.WriteFile(asLAG, []byte(hex.EncodeToString(lagKey[:32])+"\n"), 0o600)
	if out, err := runCA("trace", "--data", data, "--admin-key", asLAG, one); err == nil || !strings.Contains(err.Error(), "not permitted") {
		t.Fatalf("trace with the LAG's key: %v\n%s", err, out)
	}
	if _, err := runCA("trace", "--data", data, "--admin-key", filepath.Join(data, "lag-lag-1", "lag.key"), one); err == nil || !strings.Contains(err.Error(), "admin key") {
		t.Fatalf("trace with lag.key: %v", err)
	}
	lagOnly := t.TempDir() // a root with the LAG's directory and the CA's public files, not the CA's secrets
	os.MkdirAll(filepath.Join(lagOnly, "ca"), 0o700)
	for _, f := range []string{"public.key", "addr"} {
		b, _ := os.ReadFile(filepath.Join(data, "ca", f))
		os.WriteFile(filepath.Join(lagOnly, "ca", f), b, 0o600)
	}
	if _, err := runCA("trace", "--data", lagOnly, "--evidence", evFile, one); err == nil || !strings.Contains(err.Error(), "admin key") {
		t.Fatalf("trace from the LAG's side: %v", err)
	}

	// Bad input, each with a clear error.
	forged := filepath.Join(t.TempDir(), "forged.jsonl")
	line := strings.SplitAfter(string(raw), "\n")[0]
	i := strings.LastIndex(line, `"`) - 3 // inside the signature's hex
	flip := map[byte]byte{'0': '1', '1': '0', '2': '3', '3': '2', '4': '5', '5': '4', '6': '7', '7': '6', '8': '9', '9': '8', 'a': 'b', 'b': 'a', 'c': 'd', 'd': 'c', 'e': 'f', 'f': 'e'}
	os.WriteFile(forged, []byte(line[:i]+string(flip[line[i]])+line[i+1:]), 0o600)
	garbled := filepath.Join(t.TempDir(), "garbled.jsonl")
	os.WriteFile(garbled, []byte(line+"{not json}\n"), 0o600)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"trace", "--data", data}, "name the sessions"},
		{[]string{"trace", "--data", data, "--all", one}, "name the sessions"},
		{[]string{"trace", "--data", data, "xyz!"}, "hex digits"},
		{[]string{"trace", "--data", data, "ab"}, "hex digits"},
		{[]string{"trace", "--data", data, "0000000000000000000000000000000000000000000000000000000000000000"}, "no session"},
		{[]string{"trace", "--data", data, "--evidence", filepath.Join(data, "missing.jsonl"), "--all"}, "reading evidence"},
		{[]string{"trace", "--data", data, "--evidence", garbled, "--all"}, "line 2"},
		{[]string{"trace", "--data", data, "--evidence", forged, "--all"}, "bad signature"},
		{[]string{"trace", "--data", data, "--ca-addr", "127.0.0.1:1", "--all"}, "no CA is listening"},
		{[]string{"trace", "--data", t.TempDir(), "--evidence", evFile, "--all"}, "public key"},
		{[]string{"revoke", "--data", data}, "requires at least 1 arg"},
		{[]string{"revoke", "--data", data, ""}, "identity"},
		{[]string{"revoke", "--data", data, strings.Repeat("x", 65)}, "identity"},
		{[]string{"revoke", "--data", data, "BV-404"}, `the CA refused: auth: unknown session, member or party: vehicle "BV-404"`},
	} {
		out, err := runCA(c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("gridveil ca %v: %v, want an error with %q\n%s", c.args, err, c.want, out)
		}
	}

	// Revocation: every linked LAG refuses the vehicle by itself.
	out, err = runCA("revoke", "--data", data, "BV-002")
	if err != nil || !strings.Contains(out, `vehicle "BV-002" revoked`) || !strings.Contains(out, "sent to 1 linked LAG") {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(lagOut.String(), "revocation list v1") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	caBefore := strings.Count(caOut.String(), `vehicle "BV-002"`)
	out, err = runAgentErr("--data", data, "--count", "3", "--scheme", "pseudonym", "--resume=false")
	// The LAG refuses with a reject frame that reaches the vehicle before
	// the connection closes, so the vehicle learns why; the CA never heard
	// of the attempt.
	if err == nil || !strings.Contains(out, "2 of 3 vehicles completed") || !regexp.MustCompile(`BV-002  FAILED: BV-002: authenticating:.*revoked`).MatchString(out) {
		t.Fatalf("after revoking BV-002: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`rejected: auth: revoked: pseudonym`).MatchString(lagOut.String()) {
		t.Fatalf("the LAG did not refuse a revoked pseudonym:\n%s", lagOut)
	}
	if strings.Count(caOut.String(), `vehicle "BV-002"`) != caBefore {
		t.Fatalf("the revoked vehicle reached the CA:\n%s", caOut)
	}
	if out, err := runCA("revoke", "--data", data, "BV-002"); err != nil || !strings.Contains(out, "revoked") {
		t.Fatalf("revoking twice: %v\n%s", err, out)
	}
}

// TestEnrolmentCredentialsCLI: the operator's side of per-identity
// admission. A vehicle without a credential is refused before it reaches
// the CA, with the command that issues one; issued credentials enrol
// their vehicles; a revoked one enrols no one, and the agent says why; an
// enrolled vehicle needs no credential and gets none; bad input is named.
func TestEnrolmentCredentialsCLI(t *testing.T) {
	data := t.TempDir()
	_, stopCA := startServe(t, data, filepath.Join(data, "ca", "addr"), "--role", "ca", "--aggregate-min", "2")
	defer stopCA()
	lagOut, stopLAG := startServe(t, data, filepath.Join(data, "lag-lag-1", "addr"), "--role", "lag")
	defer stopLAG()
	waitFor(t, 10*time.Second, "the LAG's link", func() bool { return strings.Contains(lagOut.String(), "synced") })
	if exists(filepath.Join(data, "ca", "enrol.token")) {
		t.Fatal("the CA wrote a shared enrolment token")
	}

	out, err := runAgentErr("--data", data, "--count", "2", "--scheme", "pseudonym")
	if err == nil || !strings.Contains(out, "BV-001 has no enrolment credential") || !strings.Contains(out, "gridveil ca issue vehicle BV-001 --data "+data) {
		t.Fatalf("vehicles without credentials: %v\n%s", err, out)
	}
	out, err = runCA("issue", "vehicle", "--count", "3", "--data", data)
	if err != nil || strings.Count(out, "enrolment credential for vehicle") != 3 || !exists(filepath.Join(data, "credentials", "vehicle-BV-003.cred")) {
		t.Fatalf("issue --count 3: %v\n%s", err, out)
	}
	if out, err := runCA("revoke-credential", "vehicle", "BV-003", "--data", data); err != nil || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke-credential: %v\n%s", err, out)
	}
	out, err = runAgentErr("--data", data, "--count", "3", "--scheme", "pseudonym")
	if err == nil || !strings.Contains(out, "2 of 3 vehicles completed") || !regexp.MustCompile(`BV-003  FAILED: .*enrolment credential was revoked`).MatchString(out) {
		t.Fatalf("with a revoked credential: %v\n%s", err, out)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"issue", "vehicle", "BV-001"}, "is enrolled already"},
		{[]string{"revoke-credential", "vehicle", "BV-001"}, "revoke it instead"},
		{[]string{"revoke-credential", "lag", "lag-9"}, "no enrolment credential was issued"},
		{[]string{"issue", "truck", "T-1"}, "use vehicle or lag"},
		{[]string{"issue", "vehicle"}, "name at least one party"},
		{[]string{"issue", "vehicle", "BV-7", "--count", "2"}, "not both"},
	} {
		out, err := runCA(append(c.args, "--data", data)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("gridveil ca %v: %v, want an error with %q\n%s", c.args, err, c.want, out)
		}
	}
}
