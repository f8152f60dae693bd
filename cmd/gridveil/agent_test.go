package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestAgentWithoutCA: agent bv with no CA fails at once, says what to
// start, and creates no folder: neither with no CA files at all, nor with
// the files of a CA that is not running.
func TestAgentWithoutCA(t *testing.T) {
	data := filepath.Join(t.TempDir(), "fresh")
	out, err := runAgentErr("--data", data, "--count", "2")
	if err == nil || !strings.Contains(err.Error(), "public key") || !strings.Contains(err.Error(), "serve --role ca") {
		t.Fatalf("agent with no CA files: %v\n%s", err, out)
	}
	if exists(data) {
		t.Fatalf("agent bv left %s behind", data)
	}

	data = t.TempDir()
	_, stopCA := startServe(t, data, filepath.Join(data, "ca", "addr"), "--role", "ca", "--addr", "127.0.0.1:0")
	stopCA()
	out, err = runAgentErr("--data", data, "--count", "2")
	if err == nil || !strings.Contains(err.Error(), "does not answer") || !strings.Contains(err.Error(), "gridveil serve --role ca --data "+data) {
		t.Fatalf("agent with a stopped CA: %v\n%s", err, out)
	}
	if exists(filepath.Join(data, "bv")) {
		t.Fatal("agent bv left a vehicles' folder behind")
	}
}

// TestRevocationDemo is the README's demo: five vehicles run twice, then
// gridveil ca revoke BV-002. On the very next agent bv --count 5 the
// revoked vehicle, which still holds its ticket and pseudonyms, is refused
// at the LAG (by the LAG itself, on the revocation list), and the four
// others resume with their tickets in that same run.
func TestRevocationDemo(t *testing.T) {
	data := t.TempDir()
	caOut, stopCA := startServe(t, data, filepath.Join(data, "ca", "addr"), "--role", "ca", "--aggregate-min", "2")
	defer stopCA()
	lagOut, stopLAG := startServe(t, data, filepath.Join(data, "lag-lag-1", "addr"), "--role", "lag")
	defer stopLAG()
	waitFor(t, 10*time.Second, "the LAG's link", func() bool { return strings.Contains(lagOut.String(), "synced") })
	issueVehicles(t, data, 5)

	if out := runAgent(t, "--data", data, "--count", "5"); !strings.Contains(out, "5 of 5 vehicles completed") {
		t.Fatalf("first run:\n%s", out)
	}
	out, err := runCA("revoke", "--data", data, "BV-002")
	if err != nil || !strings.Contains(out, `vehicle "BV-002" revoked`) {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	waitFor(t, 10*time.Second, "the revocation list at the LAG", func() bool { return strings.Contains(lagOut.String(), "revocation list v1") })
	lagBefore := len(lagOut.String())
	caPermits := strings.Count(caOut.String(), `permit: session`)

	out, err = runAgentErr("--data", data, "--count", "5")
	if err == nil || !strings.Contains(out, "4 of 5 vehicles completed") {
		t.Fatalf("after revoking BV-002: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`BV-002  FAILED: BV-002: authenticating: .*revoked`).MatchString(out) {
		t.Fatalf("BV-002 not refused for its revocation:\n%s", out)
	}
	if !strings.Contains(out, "BV-002  the CA did not renew its credentials") {
		t.Fatalf("BV-002's refused refresh is not reported:\n%s", out)
	}
	for _, id := range []string{"BV-001", "BV-003", "BV-004", "BV-005"} {
		if !regexp.MustCompile(id + `  at lag-1 \(home network, full service; pseudonym, resumed with a ticket\)`).MatchString(out) {
			t.Fatalf("%s did not resume with its ticket in the run after the revocation:\n%s", id, out)
		}
	}
	// The refusals are the LAG's own: the revoked ticket's origin, then
	// the revoked pseudonym of the full authentication it fell back to.
	lagNow := lagOut.String()[lagBefore:]
	if !strings.Contains(lagNow, "rejected: auth: revoked: the credential of the ticket's origin session") ||
		!strings.Contains(lagNow, "rejected: auth: revoked: pseudonym") {
		t.Fatalf("the LAG did not refuse the revoked vehicle itself:\n%s", lagNow)
	}
	if n := strings.Count(caOut.String(), `permit: session`); n != caPermits {
		t.Fatalf("the CA issued %d permits in a run of resumptions", n-caPermits)
	}
}
