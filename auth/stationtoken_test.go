package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

// independentStationToken computes the construction documented on
// StationToken with crypto/hmac directly, not with package auth's mac.
func independentStationToken(opKey [32]byte, lagID string, binding [32]byte) StationToken {
	h := hmac.New(sha256.New, opKey[:])
	h.Write([]byte("gridveil/op/station-token/v1\x00"))
	for _, p := range [][]byte{[]byte(lagID), binding[:]} {
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(p))))
		h.Write(p)
	}
	return StationToken(h.Sum(nil)[:16])
}

// TestStationToken: the vehicle's and the LAG's derivations of a session's
// station token agree with each other and with the documented HMAC; the
// LAG's index holds it exactly while the session is active; what an
// eavesdropper of the handshake can compute (anything from the binding
// alone) is not held; a second session of the same vehicle (a resumption
// with a ticket, then a full authentication) gets an unrelated token; the
// vehicle has no token before admission or after the session closed.
func TestStationToken(t *testing.T) {
	n := newTestNet(t, CAConfig{}, "lag-1")
	node := n.lags["lag-1"]
	l := node.lag
	b := n.newBV("VIN-1", "utility-a", 4)
	if _, err := b.NewSession(SessionOptions{}).StationToken(); !errors.Is(err, ErrState) {
		t.Fatalf("a session not yet admitted gave a token (err %v)", err)
	}
	opts := SessionOptions{Schemes: []Scheme{SchemePseudonym}, Resume: true}
	c1 := n.connect(b, "lag-1", opts)
	n.mustCharging(c1)
	if !n.lagView(c1).Active {
		t.Fatal("the LAG does not hold the session as active")
	}
	tok1, err := c1.s.StationToken()
	if err != nil {
		t.Fatal(err)
	}
	bind := c1.s.Binding()
	if want := independentStationToken(c1.s.opKey, "lag-1", bind); tok1 != want {
		t.Fatalf("vehicle's token %x, the documented HMAC gives %x", tok1, want)
	}
	if ls := l.sessions[c1.id]; ls.token != tok1 || ls.opKey != c1.s.opKey {
		t.Fatalf("the LAG derived %x, the vehicle %x", ls.token, tok1)
	}
	if !l.HoldsStationToken(tok1) {
		t.Fatal("the LAG does not hold the token of its active session")
	}
	// What a recorder of the handshake knows is the binding; no function of
	// it alone is the token.
	old := sha256.Sum256(append([]byte("gridveil/ocpp/idToken/1\x00lag-1\x00"), bind[:]...))
	for _, guess := range []StationToken{StationToken(old[:16]), StationToken(bind[:16]), independentStationToken([32]byte{}, "lag-1", bind)} {
		if l.HoldsStationToken(guess) {
			t.Fatalf("the LAG holds %x, computed without the session's operation key", guess)
		}
	}
	flipped := tok1
	flipped[15] ^= 1
	if l.HoldsStationToken(flipped) {
		t.Fatal("the LAG holds a token one bit off a session's")
	}
	if got := l.StationTokens(); !slices.Equal(got, []StationToken{tok1}) {
		t.Fatalf("StationTokens %x, want [%x]", got, tok1)
	}

	n.bye(c1)
	if l.HoldsStationToken(tok1) || len(l.StationTokens()) != 0 {
		t.Fatal("the token of a closed session is still held")
	}
	if _, err := c1.s.StationToken(); !errors.Is(err, ErrState) {
		t.Fatalf("a closed session still gives its token (err %v)", err)
	}
	if len(l.byToken) != 0 {
		t.Fatalf("the token index keeps %d entries after every session closed", len(l.byToken))
	}

	seen := map[StationToken]bool{tok1: true}
	for i, o := range []SessionOptions{opts, {Schemes: []Scheme{SchemePseudonym}}} {
		c := n.connect(b, "lag-1", o)
		n.mustCharging(c)
		if i == 0 && !c.s.View().Resumed {
			t.Fatal("the second session did not resume with its ticket")
		}
		tok, err := c.s.StationToken()
		if err != nil {
			t.Fatal(err)
		}
		if seen[tok] {
			t.Fatalf("session %d of the vehicle repeats an earlier token %x", i+2, tok)
		}
		seen[tok] = true
		if tok != l.sessions[c.id].token || !l.HoldsStationToken(tok) {
			t.Fatalf("session %d: the LAG does not hold the vehicle's token", i+2)
		}
		if l.HoldsStationToken(tok1) {
			t.Fatal("a new session revived an ended session's token")
		}
		n.bye(c)
	}
}
