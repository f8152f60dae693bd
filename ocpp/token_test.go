package ocpp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// tokenStatusOf sends a CALL (Authorize or TransactionEvent) and returns
// the idTokenInfo status of its answer.
func tokenStatusOf(t *testing.T, ws *websocket.Conn, frame string) string {
	t.Helper()
	f := roundTrip(t, ws, frame)
	if f.Type != TypeCallResult {
		t.Fatalf("%s: got %+v", frame, f)
	}
	var r struct {
		IDTokenInfo *IDTokenInfo `json:"idTokenInfo"`
	}
	if err := json.Unmarshal(f.Payload, &r); err != nil || r.IDTokenInfo == nil {
		t.Fatalf("%s: answer %s has no idTokenInfo", frame, f.Payload)
	}
	return r.IDTokenInfo.Status
}

func authorizeFrame(id string, tok IDToken) string {
	b, _ := json.Marshal(map[string]any{"idToken": tok})
	return `[2,"` + id + `","Authorize",` + string(b) + `]`
}

// eventFrame is a TransactionEvent of transaction tx; tok nil: none.
func eventFrame(id, kind, tx string, seq int, tok *IDToken) string {
	ev := map[string]any{"eventType": kind, "timestamp": "2025-01-15T19:00:00Z", "triggerReason": "Authorized", "seqNo": seq,
		"transactionInfo": map[string]any{"transactionId": tx}, "evse": map[string]any{"id": 1},
		"meterValue": []any{map[string]any{"timestamp": "2025-01-15T19:00:00Z", "sampledValue": []any{map[string]any{"value": 100 * (seq + 1)}}}}}
	if tok != nil {
		ev["idToken"] = tok
	}
	b, _ := json.Marshal(ev)
	return `[2,"` + id + `","TransactionEvent",` + string(b) + `]`
}

// TestSessionTokenLifecycle follows one session token through a real LAG
// and two stations: accepted while its session is held; ConcurrentTx at a
// second station while its transaction runs (so one session cannot charge
// two cars), nothing stored; free again once that transaction ended;
// Unknown once the vehicle's session ended, at Authorize and at
// TransactionEvent, nothing stored, the other station served throughout. A
// restarted CSMS still knows which tokens are in a transaction (from its
// metering log). A session that ends while its transaction runs gets the
// transaction stopped (RequestStopTransaction, asked once).
func TestSessionTokenLifecycle(t *testing.T) {
	w := startAuthWorld(t, "lag-1")
	vs := w.vehicles(t, "life", 3)
	sess, tok := w.connect(t, vs[0], "lag-1")
	_, tok2 := w.connect(t, vs[1], "lag-1")
	sess3, tok3 := w.connect(t, vs[2], "lag-1")
	dir := t.TempDir()
	// StopVoided runs when the test calls it, not on a timer, so that no
	// CALL of the CSMS comes between a station's request and its answer.
	opts := Options{Stations: map[string]string{"A": "pa", "B": "pb"}, Authorizer: w.authorizer("lag-1"), Dir: dir, StopVoidedEvery: -1}
	c, addr := startCSMS(t, opts)
	a, _, err := dial(addr, "A", "pa", Subprotocol)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, _, err := dial(addr, "B", "pb", Subprotocol)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	lines := func(want int, when string) {
		t.Helper()
		if n := meteringLines(t, dir); n != want {
			t.Fatalf("%s: %d metering records, want %d", when, n, want)
		}
	}
	heartbeat := func(ws *websocket.Conn, id string) {
		t.Helper()
		if f := roundTrip(t, ws, `[2,"`+id+`","Heartbeat",{}]`); f.Type != TypeCallResult {
			t.Fatalf("heartbeat: %+v", f)
		}
	}

	if st := tokenStatusOf(t, a, authorizeFrame("a1", tok)); st != StatusAccepted {
		t.Fatalf("Authorize of a held session's token: %s", st)
	}
	if st := tokenStatusOf(t, a, eventFrame("a2", "Started", "TA", 0, &tok)); st != StatusAccepted {
		t.Fatalf("TransactionEvent Started: %s", st)
	}
	lines(1, "after the accepted Started")
	if st := tokenStatusOf(t, b, authorizeFrame("b1", tok)); st != StatusConcurrentTx {
		t.Errorf("Authorize at station B while the token's transaction runs at A: %s, want ConcurrentTx", st)
	}
	if st := tokenStatusOf(t, b, eventFrame("b2", "Started", "TB", 0, &tok)); st != StatusConcurrentTx {
		t.Errorf("Started at station B with the token in use: %s, want ConcurrentTx", st)
	}
	lines(1, "after B's refused Started")
	heartbeat(b, "b3")
	if f := roundTrip(t, a, eventFrame("a3", "Ended", "TA", 1, nil)); f.Type != TypeCallResult {
		t.Fatalf("Ended: %+v", f)
	}
	lines(2, "after A's Ended")
	if st := tokenStatusOf(t, b, authorizeFrame("b4", tok)); st != StatusAccepted {
		t.Errorf("Authorize once the token's transaction ended: %s, want Accepted", st)
	}

	// The vehicle leaves: its session ends at the LAG, and its token is void.
	bind := sess.S.Binding()
	if err := sess.Close(); err != nil {
		t.Fatal(err)
	}
	w.waitSession(t, "lag-1", bind, false)
	if st := tokenStatusOf(t, b, authorizeFrame("b5", tok)); st != StatusUnknown {
		t.Errorf("Authorize of an ended session's token: %s, want Unknown", st)
	}
	if st := tokenStatusOf(t, b, eventFrame("b6", "Started", "TC", 0, &tok)); st != StatusUnknown {
		t.Errorf("Started with an ended session's token: %s, want Unknown", st)
	}
	if f := roundTrip(t, b, eventFrame("b7", "Updated", "TC", 1, nil)); f.Type != TypeCallResult {
		t.Fatalf("Updated of the refused transaction: %+v", f)
	}
	lines(2, "after the ended session's token was refused")
	heartbeat(a, "a4")

	// A session that ends while its transaction runs: the CSMS asks the
	// station to stop the transaction, once, and still records its end.
	if st := tokenStatusOf(t, a, eventFrame("a6", "Started", "TE", 0, &tok3)); st != StatusAccepted {
		t.Fatalf("Started with the third vehicle's token: %s", st)
	}
	if n := c.StopVoided(context.Background()); n != 0 {
		t.Fatalf("StopVoided stopped %d transactions while every session is held", n)
	}
	bind3 := sess3.S.Binding()
	if err := sess3.Close(); err != nil {
		t.Fatal(err)
	}
	w.waitSession(t, "lag-1", bind3, false)
	stopped := make(chan int, 1)
	go func() { stopped <- c.StopVoided(context.Background()) }()
	_ = a.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, msg, err := a.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	f, err := DecodeFrame(msg)
	var stop struct{ TransactionID string }
	if err != nil || f.Type != TypeCall || f.Action != "RequestStopTransaction" || json.Unmarshal(f.Payload, &stop) != nil || stop.TransactionID != "TE" {
		t.Fatalf("station A got %s, want RequestStopTransaction of TE", msg)
	}
	if err := a.WriteMessage(websocket.TextMessage, []byte(`[3,"`+f.ID+`",{"status":"Accepted"}]`)); err != nil {
		t.Fatal(err)
	}
	if n := <-stopped; n != 1 {
		t.Errorf("StopVoided: %d stopped, want 1", n)
	}
	if n := c.StopVoided(context.Background()); n != 0 {
		t.Errorf("StopVoided asked again for a transaction the station already agreed to stop (%d)", n)
	}
	if f := roundTrip(t, a, eventFrame("a7", "Ended", "TE", 1, nil)); f.Type != TypeCallResult {
		t.Fatalf("Ended of TE: %+v", f)
	}
	lines(4, "after TE's Started and Ended")

	// A transaction left running across a restart keeps its token busy.
	if st := tokenStatusOf(t, a, eventFrame("a5", "Started", "TD", 0, &tok2)); st != StatusAccepted {
		t.Fatalf("Started with the second vehicle's token: %s", st)
	}
	a.Close()
	b.Close()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	_, addr = startCSMS(t, opts)
	b, _, err = dial(addr, "B", "pb", Subprotocol)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if st := tokenStatusOf(t, b, authorizeFrame("r1", tok2)); st != StatusConcurrentTx {
		t.Errorf("after a restart, Authorize of a token whose transaction runs: %s, want ConcurrentTx", st)
	}
	if st := tokenStatusOf(t, b, authorizeFrame("r2", IDToken{IDToken: strings.ToUpper(tok2.IDToken), Type: TokenType})); st != StatusInvalid {
		t.Errorf("a token in upper case: %s, want Invalid (tokens are lower-case hex)", st)
	}
}

// handshakeOnlyToken is the idToken of the old construction,
// SHA-256("gridveil/ocpp/idToken/1" 0x00 || LAG id || 0x00 || binding)
// [0:16]: what anyone who recorded the vehicle's handshake with the LAG
// can compute.
func handshakeOnlyToken(lagID string, binding [32]byte) IDToken {
	h := sha256.New()
	h.Write([]byte("gridveil/ocpp/idToken/1\x00" + lagID + "\x00"))
	h.Write(binding[:])
	return IDToken{IDToken: hex.EncodeToString(h.Sum(nil)[:16]), Type: TokenType}
}

// TestSessionTokenFromSecret: through a real LAG and a CSMS, the token the
// vehicle derives is the one the LAG holds (Accepted); the token an
// eavesdropper of the handshake could compute from the channel binding
// (the old construction) is Unknown while the session is held; a second
// session of the same vehicle gets a different token, which the CSMS
// accepts while refusing the first session's once that session ended.
func TestSessionTokenFromSecret(t *testing.T) {
	w := startAuthWorld(t, "lag-1")
	v := w.vehicles(t, "secret", 1)[0]
	sess, tok := w.connect(t, v, "lag-1")
	_, addr := startCSMS(t, Options{Stations: map[string]string{"A": "pa"}, Authorizer: w.authorizer("lag-1"), Dir: t.TempDir(), StopVoidedEvery: -1})
	ws, _, err := dial(addr, "A", "pa", Subprotocol)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if st := tokenStatusOf(t, ws, authorizeFrame("1", tok)); st != StatusAccepted {
		t.Fatalf("the vehicle's token: %s, want Accepted (the LAG's derivation disagrees)", st)
	}
	bind := sess.S.Binding()
	eaves := handshakeOnlyToken("lag-1", bind)
	if eaves == tok {
		t.Fatal("the vehicle's token is still the handshake-hash construction")
	}
	if st := tokenStatusOf(t, ws, authorizeFrame("2", eaves)); st != StatusUnknown {
		t.Errorf("a token computed from the handshake hash alone: %s, want Unknown", st)
	}
	if st := tokenStatusOf(t, ws, eventFrame("3", "Started", "TX", 0, &eaves)); st != StatusUnknown {
		t.Errorf("TransactionEvent with the handshake-hash token: %s, want Unknown", st)
	}
	if err := sess.Close(); err != nil {
		t.Fatal(err)
	}
	w.waitSession(t, "lag-1", bind, false)

	sess2, tok2 := w.connect(t, v, "lag-1")
	if tok2 == tok {
		t.Fatal("two sessions of one vehicle gave the same token")
	}
	if sess2.S.Binding() == bind {
		t.Fatal("two sessions share a channel binding")
	}
	if st := tokenStatusOf(t, ws, authorizeFrame("4", tok2)); st != StatusAccepted {
		t.Errorf("the second session's token: %s, want Accepted", st)
	}
	if st := tokenStatusOf(t, ws, authorizeFrame("5", tok)); st != StatusUnknown {
		t.Errorf("the first (ended) session's token beside the second: %s, want Unknown", st)
	}
}
