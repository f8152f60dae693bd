package auth

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/flynn/noise"
)

// TestDH25519MatchesNoise: the channel's DH function computes exactly what
// flynn/noise's DH25519 computes, and refuses a low-order point.
func TestDH25519MatchesNoise(t *testing.T) {
	d := &dh25519{keys: map[[32]byte]*ecdh.PrivateKey{}}
	for range 20 {
		a, err := d.GenerateKeypair(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := noise.DH25519.GenerateKeypair(rand.Reader)
		got, err := d.DH(a.Private, b.Public)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := noise.DH25519.DH(a.Private, b.Public)
		want2, _ := noise.DH25519.DH(b.Private, a.Public)
		if !bytes.Equal(got, want) || !bytes.Equal(got, want2) {
			t.Fatal("DH differs from noise.DH25519")
		}
		// A key it did not generate (a static key handed in as bytes).
		if got, err := d.DH(b.Private, a.Public); err != nil || !bytes.Equal(got, want) {
			t.Fatal("DH with a foreign private key", err)
		}
	}
	if _, err := d.DH(make([]byte, 32), make([]byte, 32)); err == nil {
		t.Fatal("low-order point accepted")
	}
}

// messageSeeds are encodings of every message kind, zero and realistic.
func messageSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	for k := 0; k < 256; k++ {
		if m := newMessage(uint8(k)); m != nil {
			seeds = append(seeds, encode(m))
		}
	}
	n := newTestNet(t, CAConfig{AggregateMin: 1}, "lag-1")
	b := n.newBV("VIN-1", "utility-a", 2)
	c := n.connect(b, "lag-1", SessionOptions{Role: RoleStorage, WillDischarge: true})
	n.act(c, full(1000, 5))
	seeds = append(seeds, encode(&verifyMsg{Entries: []verifyEntry{*c.lag.lag.sessions[c.id].entry}}))
	for _, h := range n.captured {
		if h.data[0] == frameHello {
			seeds = append(seeds, h.data)
		}
	}
	return seeds
}

// FuzzParseMessage: every decoder of a message kind refuses arbitrary
// bytes with ErrMalformed or ErrState, never panics, and what it accepts
// re-encodes to the same bytes.
func FuzzParseMessage(f *testing.F) {
	for _, s := range messageSeeds(f) {
		f.Add(s)
	}
	keys, err := GenerateCAKeys()
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"version":1,"bvs":[{"RealID":"x","Group":"g","RingIndex":0}],"serials":[{"bv":3}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseAny(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrState) {
				t.Fatalf("untyped error %v", err)
			}
		} else if !bytes.Equal(encode(m), b) {
			t.Fatalf("% x re-encodes as % x", b, encode(m))
		}
		if len(b) > 0 && b[0] == frameHello {
			var h hello
			if decode(b, &h) == nil && !bytes.Equal(encode(&h), b) {
				t.Fatal("hello does not re-encode")
			}
		}
		// Signed objects and stored state.
		_, _ = ParseLAGCert(b)
		_, _ = ParsePermit(b)
		_, _ = ParseDischargeRequest(b)
		_, _ = ParseGroupList(b)
		_, _ = parseCAReply(b)
		_, _ = parseRingRef(b)
		_, _ = ParseCAPublic(b)
		_, _ = ParseCAKeys(b)
		_, _ = parseAnswerPlain(b)
		_, _ = parseStatusPlain(b)
		_, _ = ParseBV(b)
		_, _ = RestoreCA(keys, CAConfig{}, b)
	})
}

// FuzzLAGReceive: a LAG fed arbitrary frames by a vehicle, before the
// handshake and as decrypted messages after it, never panics and refuses
// with a typed error.
func FuzzLAGReceive(f *testing.F) {
	for _, s := range messageSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte{frameHS1, 1, 2, 3})
	n := newTestNet(f, CAConfig{}, "lag-1")
	n.newBV("VIN-1", "utility-a", 1)
	f.Fuzz(func(t *testing.T, b []byte) {
		n.t = t
		l := n.lags["lag-1"]
		id, _, err := l.lag.Open(n.now)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.lag.Receive(n.now, id, b); err == nil && len(b) > 0 && b[0] != frameHS1 {
			t.Fatalf("frame % x accepted before the handshake", b)
		}
		a := n.attack("lag-1", choice{Version: ProtocolVersion, Scheme: SchemePseudonym})
		sealed, err := a.ch.seal(b)
		if err != nil {
			t.Fatal(err)
		}
		out, err := l.lag.Receive(n.now, a.c.id, sealed)
		if err != nil && !isTyped(err) {
			t.Fatalf("untyped error %v", err)
		}
		n.lagOut(l, out)
		n.run()
		l.lag.Close(a.c.id)
		l.lag.Close(id)
	})
}

// FuzzVehicleAndCA: a vehicle fed an arbitrary first frame (the LAG's
// hello decoder) and a CA fed an arbitrary first frame never panic.
func FuzzVehicleAndCA(f *testing.F) {
	for _, s := range messageSeeds(f) {
		f.Add(s)
	}
	n := newTestNet(f, CAConfig{}, "lag-1")
	b := n.newBV("VIN-1", "utility-a", 1)
	f.Fuzz(func(t *testing.T, in []byte) {
		n.t = t
		s := b.NewSession(SessionOptions{})
		if _, err := s.Receive(n.now, in); err != nil && !isTyped(err) {
			t.Fatalf("vehicle: untyped error %v", err)
		}
		id := n.ca.Open()
		if _, err := n.ca.Receive(n.now, id, in); err != nil && !isTyped(err) {
			t.Fatalf("CA: untyped error %v", err)
		}
		n.ca.Close(id)
	})
}

func isTyped(err error) bool {
	for _, e := range rejectCodes[1:] {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
