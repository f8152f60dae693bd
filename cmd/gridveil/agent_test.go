package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/gridveil/gridveil/ocpp"
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

// TestAgentPrintsOCPPToken: gridveil agent bv --hold prints the session's
// OCPP idToken when its cycle is done and the hold begins; a station of that LAG's
// CSMS (serve --role lag --ocpp) gets it Accepted while the agent holds
// the session, and Unknown once the agent was stopped and the session
// ended. The agent's report repeats the same token.
func TestAgentPrintsOCPPToken(t *testing.T) {
	data := t.TempDir()
	stations := filepath.Join(data, "stations.txt")
	const pass = "a-password-of-24-chars!!"
	if err := os.WriteFile(stations, []byte("CP-1 "+pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stopCA := startServe(t, data, filepath.Join(data, "ca", "addr"), "--role", "ca")
	defer stopCA()
	lagOut, stopLAG := startServe(t, data, filepath.Join(data, "lag-lag-1", "ocpp", "addr"), "--role", "lag", "--ocpp", "127.0.0.1:0", "--ocpp-stations", stations)
	defer stopLAG()
	waitFor(t, 30*time.Second, "the LAG's link", func() bool { return strings.Contains(lagOut.String(), "synced") })
	issueVehicles(t, data, 1)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	agentOut := &syncBuffer{}
	cmd := newAgentCmd()
	cmd.SetOut(agentOut)
	cmd.SetErr(agentOut)
	cmd.SetArgs([]string{"bv", "--data", data, "--count", "1", "--role", "load", "--hold", "5m"})
	cmd.SetContext(ctx)
	done := make(chan error, 1)
	go func() { done <- cmd.Execute() }()
	line := regexp.MustCompile(`BV-001  cycle done, OCPP idToken at lag-1: ([0-9a-f]{32}) \(type Central\); session held`)
	waitFor(t, 60*time.Second, "the agent's idToken line", func() bool { return line.MatchString(agentOut.String()) })
	tok := line.FindStringSubmatch(agentOut.String())[1]

	b, _ := os.ReadFile(filepath.Join(data, "lag-lag-1", "ocpp", "addr"))
	h := http.Header{}
	h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("CP-1:"+pass)))
	ws, _, err := (&websocket.Dialer{Subprotocols: []string{ocpp.Subprotocol}}).Dial("ws://"+strings.TrimSpace(string(b))+"/ocpp/CP-1", h)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	n := 0
	status := func(tok string) string {
		n++
		_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
		if err := ws.WriteMessage(websocket.TextMessage, []byte(`[2,"`+strconv.Itoa(n)+`","Authorize",{"idToken":{"idToken":"`+tok+`","type":"Central"}}]`)); err != nil {
			t.Fatal(err)
		}
		_, msg, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		f, err := ocpp.DecodeFrame(msg)
		var r struct{ IDTokenInfo ocpp.IDTokenInfo }
		if err != nil || f.Type != ocpp.TypeCallResult || json.Unmarshal(f.Payload, &r) != nil {
			t.Fatalf("Authorize: %s", msg)
		}
		return r.IDTokenInfo.Status
	}
	if st := status(tok); st != ocpp.StatusAccepted {
		t.Fatalf("the token printed for a held session: %s, want Accepted\n%s", st, agentOut)
	}
	if st := status(strings.Repeat("0", 32)); st != ocpp.StatusUnknown {
		t.Fatalf("a forged token beside it: %s, want Unknown", st)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("agent stopped while holding: %v\n%s", err, agentOut)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the agent did not stop within 60 s of its context's end")
	}
	out := agentOut.String()
	if !strings.Contains(out, "1 of 1 vehicles completed") || !strings.Contains(out, "    OCPP idToken at lag-1: "+tok+" (type Central), valid while the session lasted") {
		t.Fatalf("the agent's report lacks the completed cycle or the same token:\n%s", out)
	}
	waitFor(t, 30*time.Second, "the ended session's token refused", func() bool { return status(tok) == ocpp.StatusUnknown })
}
