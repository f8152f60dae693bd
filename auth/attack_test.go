package auth

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flynn/noise"

	"github.com/gridveil/gridveil/auth/lsag"
	"github.com/gridveil/gridveil/auth/pseudonym"
)

// Each test here is an attack; it fails if the attack succeeds.

// authenticated reports whether a session got access at the LAG.
func authenticated(n *testNet, c *bvConn) bool {
	for _, v := range c.lag.lag.Sessions() {
		if v.ID == c.id && v.Active {
			return true
		}
	}
	return false
}

// TestReplayCapturedSession: an eavesdropper records every frame a vehicle
// sent in a session and replays them to the same LAG (and another); a
// malicious LAG re-submits a session's evidence to the CA; a duplicated
// frame inside a session. None gets access.
func TestReplayCapturedSession(t *testing.T) {
	for _, sc := range schemes {
		t.Run(sc.String(), func(t *testing.T) {
			n := newTestNet(t, CAConfig{}, "lag-1", "lag-2")
			b := n.newBV("VIN-1", "utility-a", 3)
			n.newBV("VIN-2", "utility-a", 1)
			c := n.connect(b, "lag-1", SessionOptions{Role: RoleLoad, Schemes: []Scheme{sc}})
			n.mustCharging(c)
			var sent [][]byte
			for _, h := range n.captured {
				if h.from == "bv:VIN-1" {
					sent = append(sent, h.data)
				}
			}
			if len(sent) != 3 { // handshake, authentication, grant
				t.Fatalf("captured %d vehicle frames", len(sent))
			}
			for _, lag := range []string{"lag-1", "lag-2"} {
				node := n.lags[lag]
				r := &bvConn{name: "replayer", lag: node, raw: func([]byte) {}}
				id, out, _ := node.lag.Open(n.now)
				r.id = id
				node.bvs[id] = r
				n.lagOut(node, out)
				for _, f := range sent {
					n.fromBV(r, f)
					n.run()
				}
				if authenticated(n, r) || !errors.Is(r.lagErr, ErrChannel) {
					t.Fatalf("replay to %s: authenticated %v, LAG error %v", lag, authenticated(n, r), r.lagErr)
				}
			}
			// A malicious LAG forwards the same evidence to the CA again.
			var entry *verifyEntry
			for _, s := range c.lag.lag.sessions {
				if s.id == c.id {
					entry = s.entry
				}
			}
			vs := n.ca.verify(n.now, "lag-2", []verifyEntry{*entry}, &Output{})
			if errOf(vs[0].Code) != ErrReplay {
				t.Fatalf("CA accepted replayed evidence from another LAG: code %d", vs[0].Code)
			}
			vs = n.ca.verify(n.now, "lag-1", []verifyEntry{*entry}, &Output{})
			if errOf(vs[0].Code) != ErrReplay {
				t.Fatalf("CA accepted replayed evidence: code %d", vs[0].Code)
			}
			// The same frame twice inside the session: the Noise nonce moved on.
			n.captured = nil
			n.act(c, full(1000, 1))
			dup := n.captured[0].data
			n.fromBV(c, dup)
			n.run()
			if !errors.Is(c.lagErr, ErrChannel) {
				t.Fatalf("duplicated frame: %v", c.lagErr)
			}
		})
	}
}

// TestReplayOldPermit: a permit from an earlier session, replayed into a
// new one by a malicious LAG, is refused by the vehicle.
func TestReplayOldPermit(t *testing.T) {
	n := newTestNet(t, CAConfig{}, "lag-1")
	b := n.newBV("VIN-1", "utility-a", 3)
	c1 := n.connect(b, "lag-1", SessionOptions{Role: RoleLoad})
	n.mustCharging(c1)
	old := c1.s.permit.Marshal()
	n.bye(c1)
	n.tamper = func(h hop) []byte {
		if h.to == "bv:VIN-1" && h.data[0] == frameData {
			if s := c1.lag.lag.sessions[2]; s != nil && s.state == lsAwaitGrant {
				f, _ := s.ch.seal(encode(&permitMsg{Permit: old}))
				// Keep both sides' nonces in step: the LAG sealed one
				// message; the vehicle gets the replayed permit instead.
				return f
			}
		}
		return h.data
	}
	c2 := n.connect(b, "lag-1", SessionOptions{Role: RoleLoad})
	if c2.s.State() == BVCharging || (!errors.Is(c2.err, ErrReplay) && !errors.Is(c2.err, ErrChannel)) {
		t.Fatalf("old permit accepted: state %s, %v", c2.s.State(), c2.err)
	}
}

// TestImpersonateLAG: a LAG certified by another CA, a LAG that replays a
// real LAG's hello without its static key, a LAG with an expired
// certificate, another (certified) LAG than the one expected, and a
// revoked LAG all fail.
func TestImpersonateLAG(t *testing.T) {
	n := newTestNet(t, CAConfig{}, "lag-1")
	b := n.newBV("VIN-1", "utility-a", 5)

	// A rogue CA certifies a rogue LAG: the vehicle refuses its hello.
	rogue := newTestNet(t, CAConfig{}, "lag-1")
	rb := rogue.lags["lag-1"]
	c := &bvConn{name: "victim", s: b.NewSession(SessionOptions{}), lag: rb}
	id, out, _ := rb.lag.Open(n.now)
	c.id = id
	rb.bvs[id] = c
	rogue.lagOut(rb, out)
	rogue.run()
	if !errors.Is(c.err, ErrUntrusted) || c.s.State() == BVCharging {
		t.Fatalf("rogue-CA LAG: %v", c.err)
	}

	// An attacker replays lag-1's hello but holds another static key: it
	// cannot read the vehicle's first handshake message, and whatever it
	// answers fails at the vehicle.
	node := n.lags["lag-1"]
	_, out, _ = node.lag.Open(n.now)
	hello := out.Frames[0].Data
	v := b.NewSession(SessionOptions{})
	msg1, err := v.Receive(n.now, hello)
	if err != nil {
		t.Fatal(err)
	}
	fake, _ := noise.DH25519.GenerateKeypair(rand.Reader)
	fakeKey, _ := newStaticKey(fake)
	ach, _ := newChannel(noise.HandshakeNK, false, append([]byte(prologueBVLAG), hello...), fakeKey, nil)
	if _, err := ach.read(msg1[0][1:]); !errors.Is(err, ErrChannel) {
		t.Fatalf("impostor read the vehicle's handshake: %v", err)
	}
	other, _ := newChannel(noise.HandshakeNK, false, append([]byte(prologueBVLAG), hello...), node.lag.static, nil)
	other2, _ := newChannel(noise.HandshakeNK, true, append([]byte(prologueBVLAG), hello...), staticKey{}, node.lag.cfg.NoiseKey.Public)
	m1, _ := other2.write(nil)
	other.read(m1)
	m2, _ := other.write(make([]byte, 32)) // a valid msg2 of another handshake
	if _, err := v.Receive(n.now, append([]byte{frameHS2}, m2...)); !errors.Is(err, ErrChannel) {
		t.Fatalf("impostor's handshake accepted: %v", err)
	}

	// Another certified LAG, when the vehicle expects lag-1.
	n.addLAG("lag-evil", "utility-a", LAGConfig{})
	c = n.connect(b, "lag-evil", SessionOptions{ExpectLAG: "lag-1"})
	if !errors.Is(c.err, ErrUntrusted) {
		t.Fatalf("unexpected LAG accepted: %v", c.err)
	}

	// An expired certificate.
	n.now = n.now.Add(31 * 24 * time.Hour)
	v = b.NewSession(SessionOptions{})
	if _, err := v.Receive(n.now, hello); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired LAG certificate: %v", err)
	}
	n.now = t0

	// A revoked LAG loses its link and cannot link again, so no vehicle
	// gets a permit through it.
	out, err = n.ca.RevokeLAG(n.now, "lag-evil")
	if err != nil {
		t.Fatal(err)
	}
	n.caOut(out)
	n.run()
	evil := n.lags["lag-evil"]
	if evil.lag.Linked() {
		t.Fatal("revoked LAG still linked")
	}
	n.caErrs = nil
	n.link(evil)
	if evil.lag.Linked() || len(n.caErrs) == 0 || !errors.Is(n.caErrs[0], ErrRevoked) {
		t.Fatalf("revoked LAG re-linked: %v", n.caErrs)
	}
	c = n.connect(b, "lag-evil", SessionOptions{})
	if c.s.State() == BVCharging {
		t.Fatal("vehicle got access through a revoked LAG")
	}
}

// TestImpersonateBV: no credential, a certificate from another CA, a
// genuine certificate without its private key, an LSAG signature by a key
// outside the group, a credential relayed from a session at another LAG,
// and enrolment without the CA's token.
func TestImpersonateBV(t *testing.T) {
	n := newTestNet(t, CAConfig{}, "lag-1", "lag-2")
	victim := n.newBV("VIN-1", "utility-a", 2)
	n.newBV("VIN-2", "utility-a", 1)

	unenrolled, _ := NewBV("VIN-X", "utility-a", n.ca.Public())
	c := n.connect(unenrolled, "lag-1", SessionOptions{})
	if !errors.Is(c.err, ErrNoCredential) {
		t.Fatalf("vehicle without credentials: %v", c.err)
	}

	// Certificate from another CA, properly signed with its key.
	rogue := newTestNet(t, CAConfig{})
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	tr, _ := rogue.ca.Public().trace()
	cert, _ := pseudonym.Issue(rogue.keys.Sign, tr, "VIN-9", "utility-a", pub, n.now.Add(-time.Minute), n.now.Add(time.Hour))
	a := n.attack("lag-1", choice{Version: ProtocolVersion, Scheme: SchemePseudonym})
	stmt := authStatement(a.ch.binding, a.challenge, "lag-1", SchemePseudonym, RoleLoad, 0, cert.Marshal())
	if err := a.send(&authReq{Scheme: SchemePseudonym, Role: RoleLoad, Cred: cert.Marshal(), Sig: ed25519.Sign(priv, stmt)}); !errors.Is(err, ErrNoCredential) {
		t.Fatalf("foreign certificate: %v", err)
	}

	// A genuine certificate (they travel encrypted, but suppose one leaked)
	// signed with another key.
	genuine := victim.pseudo[0].cert.Marshal()
	a = n.attack("lag-1", choice{Version: ProtocolVersion, Scheme: SchemePseudonym})
	stmt = authStatement(a.ch.binding, a.challenge, "lag-1", SchemePseudonym, RoleLoad, 0, genuine)
	if err := a.send(&authReq{Scheme: SchemePseudonym, Role: RoleLoad, Cred: genuine, Sig: ed25519.Sign(priv, stmt)}); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("certificate without its key: %v", err)
	}

	// LSAG by an outsider: it signs over a ring of its own key and a
	// member's, but can only name group members in the ring reference.
	a = n.attack("lag-1", choice{Version: ProtocolVersion, Scheme: SchemeLSAG})
	outsider, _ := lsag.GenerateKey()
	member := n.ca.GroupList("utility-a").Keys[1]
	ring, _ := lsag.NewRing([][32]byte{outsider.Public(), member})
	rr := (&ringRef{Group: "utility-a", Members: []uint32{0, 1}}).marshal()
	base, _ := lsag.ParsePoint(a.hello.Scope.Base[:])
	stmt = authStatement(a.ch.binding, a.challenge, "lag-1", SchemeLSAG, RoleLoad, a.hello.Scope.Epoch, rr)
	sig, _ := lsag.Sign(stmt, ring, 0, outsider, base)
	if err := a.send(&authReq{Scheme: SchemeLSAG, Role: RoleLoad, Cred: rr, Sig: sig.Marshal()}); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("outsider's ring signature: %v", err)
	}

	// Relay: a genuine authentication made for a session at lag-2 is
	// replayed by an attacker into its own session at lag-1.
	var relayed *authReq
	n.tamper = func(h hop) []byte {
		if h.from == "bv:VIN-1" && h.to == "lag:lag-2" && h.data[0] == frameData && relayed == nil {
			for _, s := range n.lags["lag-2"].lag.sessions {
				if s.state == lsAwaitAuth {
					pt, err := s.ch.open(h.data[1:])
					if err == nil {
						m, _ := parseAny(pt)
						relayed, _ = m.(*authReq)
					}
					s.ch.dead = false
				}
			}
			return nil
		}
		return h.data
	}
	n.connect(victim, "lag-2", SessionOptions{})
	n.tamper = nil
	if relayed == nil {
		t.Fatal("no authentication captured")
	}
	a = n.attack("lag-1", choice{Version: ProtocolVersion, Scheme: SchemePseudonym})
	if err := a.send(relayed); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("relayed authentication: %v", err)
	}

	// Enrolment needs a credential the CA issued for the identity
	// (TestPerIdentityAdmission tries the others).
	thief, _ := NewBV("VIN-T", "utility-a", n.ca.Public())
	if err := n.tryEnrol(thief, 1, [32]byte{1}); !errors.Is(err, ErrNoAdmission) {
		t.Fatalf("enrolment without a credential: %v", err)
	}
}

// TestTamperAnyFrame flips bytes of every frame of a full cycle (vehicle,
// LAG and CA, both directions): the cycle never completes as if nothing
// happened, and what fails, fails with one of the package's errors.
func TestTamperAnyFrame(t *testing.T) {
	run := func(sc Scheme, tamper func(h hop) []byte) (ok bool, errs []error) {
		n := newTestNet(t, CAConfig{AggregateMin: 1}, "lag-1")
		b := n.newBV("VIN-1", "utility-a", 2)
		n.newBV("VIN-2", "utility-a", 1)
		n.tamper = tamper
		c := n.connect(b, "lag-1", SessionOptions{Role: RoleStorage, Schemes: []Scheme{sc}, WillDischarge: true})
		if c.s.State() == BVCharging {
			n.lagOut(c.lag, c.lag.lag.ConfirmBatch(n.now))
			n.run()
		}
		if c.s.State() == BVCharging {
			n.act(c, full(1000, 100))
		}
		if c.s.State() == BVFullyCharged {
			out, _, err := n.ca.RequestDischarge(n.now, "lag-1", Centralized, 1000, time.Hour)
			if err == nil {
				n.caOut(out)
				n.run()
			}
		}
		if c.s.State() == BVDischarging {
			n.act(c, func(s *BVSession) ([]byte, error) {
				return s.ReportStatus(StatusStopDischarg, Battery{SOCPermille: 900, EnergyWh: -50})
			})
		}
		v := c.s.View()
		ok = c.err == nil && c.lagErr == nil && len(n.caErrs) == 0 && c.s.State() == BVCharging &&
			v.BatchConfirmed && len(v.Acks) == 1 && v.BilledWh == 50 && v.SOCPermille == 900 && authenticated(n, c)
		errs = append(errs, c.err, c.lagErr)
		errs = append(errs, n.caErrs...)
		for _, e := range n.events {
			errs = append(errs, e.Err)
		}
		return ok, errs
	}
	typed := []error{ErrMalformed, ErrBadSignature, ErrBadMAC, ErrUntrusted, ErrNoCredential, ErrExpired, ErrRevoked,
		ErrReplay, ErrCloned, ErrDowngrade, ErrChannel, ErrState, ErrNotPermitted, ErrUnknown, ErrUnavailable}
	for _, sc := range schemes {
		frames := 0
		if ok, _ := run(sc, func(h hop) []byte { frames++; return h.data }); !ok {
			t.Fatalf("%s: the untampered cycle fails", sc)
		}
		tried := 0
		for fi := 0; fi < frames; fi++ {
			for _, pos := range []int{0, 1, 2, 5, 17, 40, 77, 150, 333, -1, -2, -17, -40} {
				seen := 0
				var hit *hop
				ok, errs := run(sc, func(h hop) []byte {
					seen++
					if seen-1 != fi {
						return h.data
					}
					p := pos
					if p < 0 {
						p += len(h.data)
					}
					if p < 0 || p >= len(h.data) {
						return h.data
					}
					d := bytes.Clone(h.data)
					d[p] ^= 0x20
					hit = &hop{h.from, h.to, d}
					return d
				})
				if hit == nil {
					continue
				}
				tried++
				if ok {
					t.Fatalf("%s: frame %d (%s -> %s, %d bytes), byte %d flipped: the cycle completed", sc, fi, hit.from, hit.to, len(hit.data), pos)
				}
				found := false
				for _, e := range errs {
					for _, want := range typed {
						if e != nil && errors.Is(e, want) {
							found = true
						}
					}
				}
				if !found {
					t.Fatalf("%s: frame %d byte %d: failed without a typed error: %v", sc, fi, pos, errs)
				}
			}
		}
		if tried < 100 {
			t.Fatalf("%s: only %d tamperings tried", sc, tried)
		}
		t.Logf("%s: %d frames in the cycle, %d single-byte tamperings, all refused", sc, frames, tried)
	}
}

// TestTamperSignedObjects: a malicious LAG alters what the CA signed, or
// a vehicle's sealed messages, under valid channel encryption and valid
// operators; the receiver refuses each change.
func TestTamperSignedObjects(t *testing.T) {
	n := newTestNet(t, CAConfig{AggregateMin: 1}, "lag-1")
	b := n.newBV("VIN-1", "utility-a", 4)
	c := n.connect(b, "lag-1", SessionOptions{Role: RoleStorage, WillDischarge: true})
	n.mustCharging(c)
	n.act(c, full(1000, 1))
	s := c.lag.lag.sessions[c.id]
	out, req, err := n.ca.RequestDischarge(n.now, "lag-1", Centralized, 1000, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_ = out
	reqBytes := req.Marshal()
	// Each byte of the CA's request, altered and re-MACed by the LAG.
	for i := range reqBytes {
		bad := bytes.Clone(reqBytes)
		bad[i] ^= 1
		v := *c.s
		v.requests = map[[16]byte]*DischargeRequest{}
		if _, err := v.discharge(n.now, &dischargeMsg{Request: bad, MAC: mac(s.opKey, "discharge", s.ch.binding[:], bad)}); err == nil {
			t.Fatalf("request byte %d altered: accepted", i)
		}
	}
	// Each byte of a permit.
	p := c.s.permit.Marshal()
	for i := range p {
		bad := bytes.Clone(p)
		bad[i] ^= 1
		v := *c.s
		v.state = BVAwaitPermit
		if _, err := v.gotPermit(n.now, &permitMsg{Permit: bad}); err == nil {
			t.Fatalf("permit byte %d altered: accepted", i)
		}
	}
	// Each byte of a sealed answer, forwarded to the CA.
	key, _ := random32()
	a := &answerPlain{ReqID: req.ID, Decision: Agree, ReplyKey: key}
	sealed, _ := sealToCA(n.ca.Public(), "answer", s.ch.binding, a.marshal())
	sig, _ := c.s.cred.sign(b, anonStatement(s.ch.binding, msgAnswer, req.ID[:], sealed))
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 1
		var o Output
		n.ca.answer(n.now, s.id, "lag-1", &answerFwdMsg{Binding: s.ch.binding, Answer: answerMsg{ReqID: req.ID, Sealed: bad, Sig: sig}}, &o)
		if len(o.Frames) != 0 || len(o.Events) == 0 || o.Events[0].Err == nil {
			t.Fatalf("sealed answer byte %d altered: accepted", i)
		}
	}
	// The same answer moved to another session does not open.
	other := s.ch.binding
	other[0] ^= 1
	if _, err := openAtCA(n.ca.trace, "answer", other, sealed, answerPlainSize); err == nil {
		t.Fatal("sealed answer opened under another binding")
	}
}

// TestClone: one vehicle's credentials copied into a second vehicle that
// connects at another LAG while the first is active. The CA refuses the
// second session and records the incident with the vehicle's identity.
func TestClone(t *testing.T) {
	cases := []struct {
		name   string
		scheme Scheme
		before bool // copy the credentials before the first session (same pseudonym)
	}{
		{"pseudonym, same certificate", SchemePseudonym, true},
		{"pseudonym, next certificate", SchemePseudonym, false},
		{"lsag", SchemeLSAG, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := newTestNet(t, CAConfig{}, "lag-1", "lag-2")
			b := n.newBV("VIN-1", "utility-a", 3)
			n.newBV("VIN-2", "utility-a", 1)
			var clone *BV
			snap := func() {
				st, err := b.Marshal()
				if err != nil {
					t.Fatal(err)
				}
				if clone, err = ParseBV(st); err != nil {
					t.Fatal(err)
				}
			}
			if tc.before {
				snap()
			}
			c1 := n.connect(b, "lag-1", SessionOptions{Schemes: []Scheme{tc.scheme}})
			n.mustCharging(c1)
			if !tc.before {
				snap()
			}
			c2 := n.connect(clone, "lag-2", SessionOptions{Schemes: []Scheme{tc.scheme}})
			if c2.s.State() == BVCharging || !errors.Is(c2.err, ErrCloned) {
				t.Fatalf("clone admitted: %s %v", c2.s.State(), c2.err)
			}
			inc := n.ca.Incidents()
			if len(inc) != 1 || inc[0].RealID != "VIN-1" || fmt.Sprint(inc[0].LAGs) != "[lag-1 lag-2]" {
				t.Fatalf("incidents %+v", inc)
			}
			// The LAG-side view of the clone holds nothing about the
			// vehicle either.
			for _, v := range n.lags["lag-2"].lag.Sessions() {
				if v.Active {
					t.Fatal("clone active at lag-2")
				}
			}
		})
	}
}

// TestEavesdrop records every byte on every link through enrolment and a
// full charge, discharge and charge cycle, and finds in it no identity, no
// group attribute of the vehicle, no battery value, no credential
// reference (which would let an eavesdropper link sessions) and no answer.
func TestEavesdrop(t *testing.T) {
	for _, sc := range schemes {
		t.Run(sc.String(), func(t *testing.T) {
			n := newTestNet(t, CAConfig{AggregateMin: 1}, "lag-1")
			const secretID = "VIN-SECRET-4242"
			const group = "utility-secret-b" // visiting, so the LAG's clear hello does not carry it
			b, _ := NewBV(secretID, group, n.ca.Public())
			enrolFrames := captureEnrol(t, n, b)
			n.newBV("VIN-OTHER-1", group, 1)
			c := n.connect(b, "lag-1", SessionOptions{Role: RoleStorage, Schemes: []Scheme{sc}, WillDischarge: true})
			n.mustCharging(c)
			const wh = int32(0x7E57AB1E)
			n.act(c, full(0x03E7, wh))
			out, _, _ := n.ca.RequestDischarge(n.now, "lag-1", Centralized, 0x00C0FFEE, time.Hour)
			n.caOut(out)
			n.run()
			n.act(c, func(s *BVSession) ([]byte, error) {
				return s.ReportStatus(StatusStopDischarg, Battery{SOCPermille: 0x0321, EnergyWh: -wh})
			})
			n.mustCharging(c)
			lv := n.lagView(c)
			binding := c.s.Binding()
			var all []byte
			for _, h := range n.captured {
				all = append(all, h.data...)
			}
			all = append(all, enrolFrames...)
			secrets := map[string][]byte{
				"identity":       []byte(secretID),
				"group":          []byte(group),
				"energy BE":      binary.BigEndian.AppendUint32(nil, uint32(wh)),
				"energy LE":      binary.LittleEndian.AppendUint32(nil, uint32(wh)),
				"credential ref": mustHex(t, lv.CredentialRef)[:16],
				"binding":        binding[:],
				"granted power":  binary.BigEndian.AppendUint32(nil, 0x00C0FFEE),
			}
			for what, s := range secrets {
				if bytes.Contains(all, s) {
					t.Errorf("%s (% x) appears on the wire", what, s)
				}
			}
		})
	}
}

func captureEnrol(t *testing.T, n *testNet, b *BV) []byte {
	t.Helper()
	before := len(n.captured)
	e, frame, err := b.Enrol(n.admit(b), 3)
	if err != nil {
		t.Fatal(err)
	}
	var all []byte
	id := n.ca.Open()
	for frame != nil {
		all = append(all, frame...)
		out, err := n.ca.Receive(n.now, id, frame)
		if err != nil {
			t.Fatal(err)
		}
		frame = nil
		for _, f := range out.Frames {
			if f.To != id {
				n.caOut(Output{Frames: []Frame{f}}) // pushes to linked LAGs
				continue
			}
			all = append(all, f.Data...)
			if frame, err = e.Receive(f.Data); err != nil {
				t.Fatal(err)
			}
		}
	}
	n.run()
	for _, h := range n.captured[before:] {
		all = append(all, h.data...)
	}
	return all
}

// TestRevocationReachesEveryLAG: the CA revokes a vehicle; every linked LAG
// gets the new revocation list and group keys at once, refuses the vehicle
// by itself (before asking the CA), and the vehicle's active session is
// terminated. Tickets issued before the revocation stop working.
func TestRevocationReachesEveryLAG(t *testing.T) {
	for _, sc := range schemes {
		t.Run(sc.String(), func(t *testing.T) {
			n := newTestNet(t, CAConfig{}, "lag-1", "lag-2", "lag-3")
			b := n.newBV("VIN-1", "utility-a", 6)
			n.newBV("VIN-2", "utility-a", 1)
			active := n.connect(b, "lag-1", SessionOptions{Schemes: []Scheme{sc}, Resume: true})
			n.mustCharging(active)
			// A second session of its home LAG's ticket for later.
			n.bye(active)
			active = n.connect(b, "lag-1", SessionOptions{Schemes: []Scheme{sc}})
			n.mustCharging(active)
			out, err := n.ca.RevokeBV(n.now.Add(time.Second), "VIN-1")
			if err != nil {
				t.Fatal(err)
			}
			n.now = n.now.Add(2 * time.Second)
			n.caOut(out)
			n.run()
			if !errors.Is(active.err, ErrRevoked) {
				t.Fatalf("active session not terminated: %v", active.err)
			}
			for _, name := range []string{"lag-1", "lag-2", "lag-3"} {
				l := n.lags[name].lag
				if l.crlVersion != 1 {
					t.Fatalf("%s: revocation list v%d", name, l.crlVersion)
				}
				before := len(n.captured)
				c := n.connect(b, name, SessionOptions{Schemes: []Scheme{sc}})
				// A ring cannot tell which member signed: the LAG refuses
				// a ring with a revoked member as an outdated list, and
				// the vehicle learns it is revoked when it refreshes
				// (authnet.TestOutdatedGroupListIsNotRevoked).
				want := ErrRevoked
				if sc == SchemeLSAG {
					want = ErrStaleRing
				}
				if c.s.State() == BVCharging || !errors.Is(c.lagErr, want) {
					t.Fatalf("%s admitted a revoked vehicle: %v %v", name, c.err, c.lagErr)
				}
				var rr *RejectedError
				if errors.As(c.lagErr, &rr) {
					t.Fatalf("%s relied on the CA: %v", name, c.lagErr)
				}
				for _, h := range n.captured[before:] {
					if h.to == "ca" {
						t.Fatalf("%s asked the CA about a revoked vehicle", name)
					}
				}
			}
			// The home ticket predates the revocation.
			c := n.connect(b, "lag-1", SessionOptions{Schemes: []Scheme{sc}, Resume: true})
			if c.s.State() == BVCharging {
				t.Fatal("ticket from before the revocation accepted")
			}
		})
	}
}

// TestRevocationVoidsOnlyTheRevokedTickets: after one vehicle is
// revoked, its home LAG refuses that vehicle's resumption ticket by itself
// (no message to the CA) and still resumes every other vehicle with its
// ticket. Also when the revoked vehicle's pseudonym has expired between
// the session and the revocation: the ticket outlives the pseudonym, so the
// CA must keep the serial on the list until the ticket's permit chain ends.
func TestRevocationVoidsOnlyTheRevokedTickets(t *testing.T) {
	for _, expired := range []bool{false, true} {
		t.Run(map[bool]string{false: "valid-pseudonym", true: "expired-pseudonym"}[expired], func(t *testing.T) {
			n := newTestNet(t, CAConfig{PseudonymLifetime: time.Hour}, "lag-1")
			bad := n.newBV("VIN-1", "utility-a", 3)
			good := n.newBV("VIN-2", "utility-a", 3)
			opts := SessionOptions{Schemes: []Scheme{SchemePseudonym}, Resume: true}
			for _, b := range []*BV{bad, good} {
				c := n.connect(b, "lag-1", opts)
				n.mustCharging(c)
				n.bye(c)
				if !b.HasTicket("lag-1") {
					t.Fatalf("%s got no ticket", b.RealID)
				}
			}
			if expired {
				// Past the pseudonym's period, within the ticket's 12 h.
				n.now = n.now.Add(2 * time.Hour)
				n.lagOut(n.lags["lag-1"], n.lags["lag-1"].lag.Tick(n.now))
				n.run()
			}
			out, err := n.ca.RevokeBV(n.now, "VIN-1")
			if err != nil {
				t.Fatal(err)
			}
			n.now = n.now.Add(time.Second)
			n.caOut(out)
			n.run()
			before := len(n.captured)
			c := n.connect(bad, "lag-1", opts)
			if c.s.State() == BVCharging || !errors.Is(c.lagErr, ErrRevoked) {
				t.Fatalf("the revoked vehicle's ticket: state %s, %v %v", c.s.State(), c.err, c.lagErr)
			}
			for _, h := range n.captured[before:] {
				if h.to == "ca" {
					t.Fatal("the LAG asked the CA about the revoked vehicle's ticket")
				}
			}
			c = n.connect(good, "lag-1", opts)
			n.mustCharging(c)
			if !c.s.View().Resumed {
				t.Fatalf("another vehicle's ticket was voided by the revocation: %+v", c.s.View())
			}
		})
	}
}

// TestExpired: an expired pseudonym certificate (sent by a vehicle that
// ignores its own clock), an expired resumption ticket, and evidence with a
// stale LSAG linking epoch.
func TestExpired(t *testing.T) {
	n := newTestNet(t, CAConfig{PseudonymLifetime: time.Hour}, "lag-1")
	b := n.newBV("VIN-1", "utility-a", 3)
	n.newBV("VIN-2", "utility-a", 1)
	home := n.connect(b, "lag-1", SessionOptions{Resume: true})
	n.mustCharging(home)
	n.bye(home)
	p := b.pseudo[0]
	n.now = n.now.Add(2 * time.Hour)
	n.lagOut(n.lags["lag-1"], n.lags["lag-1"].lag.Tick(n.now))
	n.run()
	a := n.attack("lag-1", choice{Version: ProtocolVersion, Scheme: SchemePseudonym})
	stmt := authStatement(a.ch.binding, a.challenge, "lag-1", SchemePseudonym, RoleLoad, 0, p.cert.Marshal())
	if err := a.send(&authReq{Scheme: SchemePseudonym, Role: RoleLoad, Cred: p.cert.Marshal(), Sig: ed25519.Sign(p.key, stmt)}); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired pseudonym: %v", err)
	}
	// The vehicle itself does not even try its expired certificates.
	c := n.connect(b, "lag-1", SessionOptions{Schemes: []Scheme{SchemePseudonym}})
	if !errors.Is(c.err, ErrNoCredential) {
		t.Fatalf("vehicle with only expired pseudonyms: %v", c.err)
	}
	// The ticket lived at most as long as its permit chain allows (12 h).
	n.now = n.now.Add(11 * time.Hour)
	n.lagOut(n.lags["lag-1"], n.lags["lag-1"].lag.Tick(n.now))
	n.run()
	c = n.connect(b, "lag-1", SessionOptions{Resume: true})
	if !errors.Is(c.lagErr, ErrExpired) {
		t.Fatalf("expired ticket: %v %v", c.err, c.lagErr)
	}
	// LSAG evidence from three epochs ago, forwarded to the CA.
	e := verifyEntry{Scheme: SchemeLSAG, Role: RoleLoad, Epoch: Epoch(n.now) - 3, Cred: (&ringRef{Group: "utility-a", Members: []uint32{0, 1}}).marshal(), Sig: make([]byte, lsag.Size(2))}
	vs := n.ca.verify(n.now, "lag-1", []verifyEntry{e}, &Output{})
	if errOf(vs[0].Code) != ErrExpired {
		t.Fatalf("stale epoch: code %d", vs[0].Code)
	}
}

// TestDowngrade: a man in the middle strips LSAG from the LAG's offer or
// lowers its version; a vehicle picks a scheme the LAG did not offer, an
// unknown scheme, or switches scheme after choosing; policies with no
// scheme in common. Each is refused.
func TestDowngrade(t *testing.T) {
	n := newTestNet(t, CAConfig{}, "lag-1")
	b := n.newBV("VIN-1", "utility-a", 5)
	n.newBV("VIN-2", "utility-a", 1)
	rewriteHello := func(f func(h *hello)) func(h hop) []byte {
		return func(h hop) []byte {
			if h.data[0] != frameHello {
				return h.data
			}
			var hl hello
			if err := decode(h.data, &hl); err != nil {
				t.Fatal(err)
			}
			f(&hl)
			return encode(&hl)
		}
	}
	n.tamper = rewriteHello(func(h *hello) { h.Schemes = []Scheme{SchemePseudonym}; h.HasScope = false })
	c := n.connect(b, "lag-1", SessionOptions{Schemes: []Scheme{SchemeLSAG, SchemePseudonym}})
	if c.s.State() == BVCharging || !errors.Is(c.lagErr, ErrChannel) {
		t.Fatalf("stripped offer: %s, LAG %v", c.s.State(), c.lagErr)
	}
	n.tamper = rewriteHello(func(h *hello) { h.Version = 0 })
	c = n.connect(b, "lag-1", SessionOptions{})
	if !errors.Is(c.err, ErrDowngrade) {
		t.Fatalf("old version: %v", c.err)
	}
	n.tamper = nil

	only := n.addLAG("lag-psd", "utility-a", LAGConfig{Schemes: []Scheme{SchemePseudonym}})
	_ = only
	c = n.connect(b, "lag-psd", SessionOptions{Schemes: []Scheme{SchemeLSAG}})
	if !errors.Is(c.err, ErrDowngrade) {
		t.Fatalf("no common scheme: %v", c.err)
	}
	for _, ch := range []choice{
		{Version: ProtocolVersion, Scheme: SchemeLSAG}, // not offered by lag-psd
		{Version: ProtocolVersion, Scheme: 0},
		{Version: ProtocolVersion, Scheme: 9},
		{Version: 0, Scheme: SchemePseudonym},
	} {
		a := n.attack("lag-psd", ch)
		if !errors.Is(a.c.lagErr, ErrDowngrade) {
			t.Fatalf("choice %+v: %v", ch, a.c.lagErr)
		}
	}
	a := n.attack("lag-1", choice{Version: ProtocolVersion, Scheme: SchemeLSAG})
	p := b.pseudo[0]
	stmt := authStatement(a.ch.binding, a.challenge, "lag-1", SchemePseudonym, RoleLoad, 0, p.cert.Marshal())
	if err := a.send(&authReq{Scheme: SchemePseudonym, Role: RoleLoad, Cred: p.cert.Marshal(), Sig: ed25519.Sign(p.key, stmt)}); !errors.Is(err, ErrDowngrade) {
		t.Fatalf("switching scheme after the choice: %v", err)
	}
}

// TestOnlyCATraces: the LAG holds nothing that opens a tracing tag; the CA
// opens both kinds of credential.
func TestOnlyCATraces(t *testing.T) {
	n := newTestNet(t, CAConfig{}, "lag-1")
	b := n.newBV("VIN-1", "utility-a", 2)
	n.newBV("VIN-2", "utility-a", 1)
	for _, sc := range schemes {
		c := n.connect(b, "lag-1", SessionOptions{Schemes: []Scheme{sc}})
		n.mustCharging(c)
		if id, err := n.ca.Trace(c.s.Binding()); err != nil || id != "VIN-1" {
			t.Fatalf("%s: CA traced %q, %v", sc, id, err)
		}
		n.bye(c)
	}
	// The LAG's only private keys are its Noise, signing and ticket keys;
	// none opens a tag.
	cert := b.pseudo[0].cert
	lagKey, err := hpke.DHKEM(ecdhX25519()).NewPrivateKey(n.lags["lag-1"].lag.cfg.NoiseKey.Private)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pseudonym.OpenTraceTag(lagKey, cert); err == nil {
		t.Fatal("the LAG's key opened a tracing tag")
	}
	if id, err := n.ca.TraceCert(cert); err != nil || id != "VIN-1" {
		t.Fatalf("CA: %q %v", id, err)
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	var out []byte
	for i := 0; i+1 < len(s); i += 2 {
		var v byte
		fmt.Sscanf(s[i:i+2], "%02x", &v)
		out = append(out, v)
	}
	if len(out) == 0 || strings.TrimSpace(s) == "" {
		t.Fatal("empty hex")
	}
	return out
}

func ecdhX25519() ecdh.Curve { return ecdh.X25519() }

// TestReplayedLinkHandshake: an attacker replays a LAG's first IK message
// to the CA. The CA answers, but the attacker's connection never becomes
// the LAG's link, so revocations still reach the real LAG.
func TestReplayedLinkHandshake(t *testing.T) {
	n := newTestNet(t, CAConfig{}, "lag-1")
	var first []byte
	n.tamper = func(h hop) []byte {
		if h.to == "ca" && h.data[0] == frameLink {
			first = h.data
		}
		return h.data
	}
	l := n.lags["lag-1"]
	n.lagOut(l, l.lag.CADisconnected())
	n.link(l)
	n.tamper = nil
	if first == nil || !l.lag.Linked() {
		t.Fatal("no link")
	}
	evil := n.ca.Open()
	out, err := n.ca.Receive(n.now, evil, first)
	if err != nil || len(out.Frames) != 1 {
		t.Fatalf("replayed handshake: %v %d", err, len(out.Frames))
	}
	if n.ca.lags["lag-1"].link == evil {
		t.Fatal("a replayed handshake took over the LAG's link")
	}
	b := n.newBV("VIN-1", "utility-a", 1)
	out, err = n.ca.RevokeBV(n.now, b.RealID)
	if err != nil {
		t.Fatal(err)
	}
	n.caOut(out)
	n.run()
	if l.lag.crlVersion != 1 {
		t.Fatal("revocation did not reach the LAG")
	}
}
