package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flynn/noise"

	"github.com/gridveil/gridveil/auth/pseudonym"
)

// evidenceOf returns the LAG's evidence records, from its "evidence"
// events, by session binding.
func evidenceOf(n *testNet) map[[32]byte]*Evidence {
	out := map[[32]byte]*Evidence{}
	for _, e := range n.events {
		if e.Kind == "evidence" && e.Evidence != nil {
			out[e.Evidence.Binding] = e.Evidence
		}
	}
	return out
}

// restartCA replaces the CA by one restored from its snapshot (which
// forgets every session) and re-links the LAGs.
func restartCA(t *testing.T, n *testNet, cfg CAConfig) {
	t.Helper()
	snap, err := n.ca.Snapshot(n.now)
	if err != nil {
		t.Fatal(err)
	}
	if n.ca, err = RestoreCA(n.keys, cfg, snap); err != nil {
		t.Fatal(err)
	}
	for _, name := range sortedKeys(n.lags) {
		l := n.lags[name]
		n.lagOut(l, l.lag.CADisconnected())
		n.link(l)
	}
}

// TestTraceEvidence: a LAG keeps evidence of every session it admits (full
// authentications and resumptions); after a CA restart, when CA.Trace no
// longer knows the sessions, the CA still traces them from the evidence,
// revoked vehicles included. The record names no one, and the CA refuses
// a record that is not a real session at that LAG.
func TestTraceEvidence(t *testing.T) {
	for _, sc := range schemes {
		t.Run(sc.String(), func(t *testing.T) {
			n := newTestNet(t, CAConfig{}, "lag-1", "lag-2")
			b := n.newBV("VIN-1", "utility-a", 4)
			other := n.newBV("VIN-2", "utility-a", 4)
			opts := SessionOptions{Schemes: []Scheme{sc}, Resume: true}
			c1 := n.connect(b, "lag-1", opts)
			n.mustCharging(c1)
			n.bye(c1)
			c2 := n.connect(b, "lag-1", opts) // resumed with the ticket
			n.mustCharging(c2)
			if !c2.s.View().Resumed {
				t.Fatal("no resumption")
			}
			n.bye(c2)
			c3 := n.connect(other, "lag-2", opts)
			n.mustCharging(c3)
			n.bye(c3)
			ev := evidenceOf(n)
			e1, e2, e3 := ev[c1.s.Binding()], ev[c2.s.Binding()], ev[c3.s.Binding()]
			if e1 == nil || e2 == nil || e3 == nil {
				t.Fatalf("evidence missing: %v %v %v", e1, e2, e3)
			}
			if !e2.Resumed || e2.Origin != c1.s.Binding() || e1.Resumed {
				t.Fatalf("resumed record %+v", e2)
			}
			for _, e := range []*Evidence{e1, e2, e3} {
				back, err := ParseEvidence(e.Marshal())
				if err != nil || !bytes.Equal(back.Marshal(), e.Marshal()) {
					t.Fatalf("round trip: %v", err)
				}
				if bytes.Contains(e.Marshal(), []byte("VIN-")) {
					t.Fatal("the evidence names the vehicle")
				}
			}

			restartCA(t, n, CAConfig{})
			if _, err := n.ca.Trace(c1.s.Binding()); !errors.Is(err, ErrUnknown) {
				t.Fatalf("a restarted CA still knows the session: %v", err)
			}
			if out, err := n.ca.RevokeBV(n.now, "VIN-1"); err != nil {
				t.Fatal(err)
			} else {
				n.caOut(out)
				n.run()
			}
			for e, want := range map[*Evidence]string{e1: "VIN-1", e3: "VIN-2"} {
				if id, err := n.ca.TraceEvidence(e); err != nil || id != want {
					t.Fatalf("traced %q, %v; want %s", id, err, want)
				}
			}
			if _, err := n.ca.TraceEvidence(e2); err == nil || !strings.Contains(err.Error(), "resumed") {
				t.Fatalf("resumed record traced directly: %v", err)
			}

			// Records that are not a real session there.
			forged := func(f func(e *Evidence)) *Evidence {
				e, _ := ParseEvidence(e1.Marshal())
				f(e)
				return e
			}
			for what, c := range map[string]struct {
				e    *Evidence
				want error
			}{
				"signature":            {forged(func(e *Evidence) { e.Sig[len(e.Sig)-3] ^= 1 }), ErrBadSignature},
				"another LAG":          {forged(func(e *Evidence) { e.LAGID = "lag-2" }), ErrBadSignature},
				"another session":      {forged(func(e *Evidence) { e.Binding = c3.s.Binding() }), ErrBadSignature},
				"another challenge":    {forged(func(e *Evidence) { e.Challenge[0] ^= 1 }), ErrBadSignature},
				"another credential":   {forged(func(e *Evidence) { e.Cred = e3.Cred }), ErrBadSignature},
				"another role":         {forged(func(e *Evidence) { e.Role = RoleSupply + 1 - e.Role%3 }), ErrBadSignature},
				"malformed role":       {forged(func(e *Evidence) { e.Role = 9 }), ErrMalformed},
				"malformed scheme":     {forged(func(e *Evidence) { e.Scheme = 7 }), ErrMalformed},
				"malformed credential": {forged(func(e *Evidence) { e.Cred = e.Cred[:len(e.Cred)-1] }), ErrMalformed},
			} {
				if what == "another credential" && sc == SchemeLSAG {
					continue // both vehicles sign with the same ring: the same credential
				}
				if _, err := n.ca.TraceEvidence(c.e); !errors.Is(err, c.want) {
					t.Errorf("%s: %v, want %v", what, err, c.want)
				}
			}
		})
	}
	// A pseudonym certificate from another CA, with a valid session
	// signature under its own key, is not the CA's credential.
	n := newTestNet(t, CAConfig{}, "lag-1")
	rogue := newTestNet(t, CAConfig{})
	tr, _ := rogue.ca.pub.trace()
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	cert, err := pseudonym.Issue(rogue.keys.Sign, tr, "VIN-9", "utility-a", pub, n.now.Add(-time.Minute), n.now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	e := &Evidence{LAGID: "lag-1", Scheme: SchemePseudonym, Role: RoleLoad, Cred: cert.Marshal()}
	e.Sig = ed25519.Sign(key, authStatement(e.Binding, e.Challenge, e.LAGID, e.Scheme, e.Role, 0, e.Cred))
	if _, err := n.ca.TraceEvidence(e); !errors.Is(err, ErrNoCredential) {
		t.Fatalf("another CA's certificate: %v", err)
	}
}

// adminRun carries an admin exchange to the test CA and returns its
// answer.
func adminRun(n *testNet, a *Admin, first []byte) (string, error) {
	id := n.ca.Open()
	defer n.ca.Close(id)
	frame := first
	for frame != nil {
		out, err := n.ca.Receive(n.now, id, frame)
		var mine []Frame
		other := out
		other.Frames = nil
		for _, f := range out.Frames {
			if f.To == id {
				mine = append(mine, f)
			} else {
				other.Frames = append(other.Frames, f)
			}
		}
		n.caOut(other) // pushes to linked LAGs
		n.run()
		if len(mine) == 0 {
			if err == nil {
				err = errors.New("the CA did not answer")
			}
			return "", err
		}
		frame = nil
		for _, f := range mine {
			next, err := a.Receive(f.Data)
			if err != nil {
				return "", err
			}
			if next != nil {
				frame = next
			}
		}
	}
	if !a.Done() {
		return "", errors.New("no answer")
	}
	return a.Result(), nil
}

func newAdminKey(t *testing.T) noise.DHKey {
	t.Helper()
	k, err := noise.DH25519.GenerateKeypair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestAdmin: the operator's admin key traces and revokes through the CA's
// listener, and the revocation reaches the LAG at once; a LAG's own
// certified key, any other key, or a CA without an admin key refuses; a
// refusal says why; a replayed first message gets nowhere.
func TestAdmin(t *testing.T) {
	admin := newAdminKey(t)
	cfg := CAConfig{AdminKey: [32]byte(admin.Public)}
	n := newTestNet(t, cfg, "lag-1")
	b := n.newBV("VIN-1", "utility-a", 3)
	n.newBV("VIN-2", "utility-a", 1)
	c := n.connect(b, "lag-1", SessionOptions{Schemes: []Scheme{SchemePseudonym}})
	n.mustCharging(c)
	n.bye(c)
	e := evidenceOf(n)[c.s.Binding()]
	pub := n.ca.Public()

	a, first, err := NewAdminTrace(pub, admin, e)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := adminRun(n, a, first); err != nil || id != "VIN-1" {
		t.Fatalf("trace: %q %v", id, err)
	}

	// Keys that are not the admin's: a LAG's certified Noise key, a
	// stranger's.
	for what, k := range map[string]noise.DHKey{"the LAG's key": n.lags["lag-1"].lag.cfg.NoiseKey, "another key": newAdminKey(t)} {
		a, first, _ := NewAdminTrace(pub, k, e)
		if _, err := adminRun(n, a, first); !errors.Is(err, ErrNotPermitted) {
			t.Errorf("trace with %s: %v", what, err)
		}
	}
	// Refusals carry their reason.
	bad, _ := ParseEvidence(e.Marshal())
	bad.Sig[0] ^= 1
	a, first, _ = NewAdminTrace(pub, admin, bad)
	var ae *AdminError
	if _, err := adminRun(n, a, first); !errors.As(err, &ae) || !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged evidence: %v", err)
	}
	a, first, _ = NewAdminRevoke(pub, admin, "VIN-404")
	if _, err := adminRun(n, a, first); !errors.Is(err, ErrUnknown) || !strings.Contains(err.Error(), "VIN-404") {
		t.Fatalf("unknown vehicle: %v", err)
	}
	if _, _, err := NewAdminRevoke(pub, admin, ""); err == nil {
		t.Fatal("empty identity accepted")
	}

	// Revocation reaches the LAG, which then refuses the vehicle itself.
	a, first, _ = NewAdminRevoke(pub, admin, "VIN-1")
	res, err := adminRun(n, a, first)
	if err != nil || !strings.Contains(res, `"VIN-1" revoked`) || !strings.Contains(res, "1 linked LAG") {
		t.Fatalf("revoke: %q %v", res, err)
	}
	before := len(n.caErrs)
	c = n.connect(b, "lag-1", SessionOptions{Schemes: []Scheme{SchemePseudonym}})
	if !errors.Is(c.lagErr, ErrRevoked) || len(n.caErrs) != before {
		t.Fatalf("revoked vehicle at the LAG: %v %v", c.lagErr, n.caErrs[before:])
	}

	// Replaying a recorded exchange: the CA answers the first message
	// again, with a new ephemeral key, so the recorded request does not
	// decrypt.
	a, first, _ = NewAdminRevoke(pub, admin, "VIN-2")
	id := n.ca.Open()
	out, err := n.ca.Receive(n.now, id, first)
	if err != nil {
		t.Fatal(err)
	}
	request, err := a.Receive(out.Frames[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	n.ca.Close(id) // the recorded request never reached the CA
	id = n.ca.Open()
	if _, err := n.ca.Receive(n.now, id, first); err != nil {
		t.Fatal(err)
	}
	if _, err := n.ca.Receive(n.now, id, request); !errors.Is(err, ErrChannel) {
		t.Fatalf("a replayed admin request: %v", err)
	}
	n.ca.Close(id)
	if n.ca.bvs[n.ca.byReal["VIN-2"]].Revoked {
		t.Fatal("the replay revoked VIN-2")
	}

	// Admin requests on an enrolment connection, and a CA with no admin key.
	enrolCh, err := newChannel(noise.HandshakeNK, true, []byte(prologueEnrol), staticKey{}, pub.NoiseKey[:])
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := enrolCh.write(nil)
	id = n.ca.Open()
	out, _ = n.ca.Receive(n.now, id, append([]byte{frameEnrol}, msg...))
	if _, err := enrolCh.read(out.Frames[0].Data[1:]); err != nil {
		t.Fatal(err)
	}
	req, _ := enrolCh.seal(encode(&adminRevokeMsg{RealID: "VIN-2"}))
	if _, err := n.ca.Receive(n.now, id, req); !errors.Is(err, ErrState) {
		t.Fatalf("admin request on an enrolment connection: %v", err)
	}
	n.ca.Close(id)
	closed := newTestNet(t, CAConfig{})
	a, first, _ = NewAdminRevoke(closed.ca.Public(), admin, "VIN-2")
	if _, err := adminRun(closed, a, first); !errors.Is(err, ErrNotPermitted) {
		t.Fatalf("CA without an admin key: %v", err)
	}
}

// FuzzParseEvidence: any bytes parse to a record that re-encodes to them,
// or to a typed error.
func FuzzParseEvidence(f *testing.F) {
	e := &Evidence{LAGID: "lag-1", Time: 1, Scheme: SchemePseudonym, Role: RoleLoad, Cred: []byte{1}, Sig: []byte{2}}
	f.Add(e.Marshal())
	r := &Evidence{LAGID: "lag-1", Resumed: true, Origin: [32]byte{1}, Scheme: SchemeLSAG, Role: RoleStorage}
	f.Add(r.Marshal())
	f.Add([]byte(domEvidence))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEvidence(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if !bytes.Equal(e.Marshal(), b) {
			t.Fatalf("not canonical: %x", b)
		}
	})
}

// FuzzAdminMessages: the admin messages decode canonically or fail typed.
func FuzzAdminMessages(f *testing.F) {
	for _, m := range []message{&adminTraceMsg{Evidence: []byte{1, 2}}, &adminRevokeMsg{RealID: "VIN-1"}, &adminResultMsg{Code: 3, Text: "no"}} {
		f.Add(encode(m))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseAny(b)
		if err != nil {
			if !isTyped(err) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if !bytes.Equal(encode(m), b) {
			t.Fatalf("not canonical: %x", b)
		}
	})
}
