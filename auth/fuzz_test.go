package auth

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"math/big"
	"slices"
	"testing"

	"github.com/flynn/noise"
)

// TestDH25519MatchesNoise: the channel's DH function computes exactly what
// flynn/noise's DH25519 and crypto/ecdh compute, and refuses exactly the
// public keys crypto/ecdh refuses (those giving an all-zero secret).
func TestDH25519MatchesNoise(t *testing.T) {
	var d dh25519
	for range 20 {
		a, err := d.GenerateKeypair(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		ea, err := ecdh.X25519().NewPrivateKey(a.Private)
		if err != nil || !bytes.Equal(ea.PublicKey().Bytes(), a.Public) {
			t.Fatal("key pair differs from crypto/ecdh", err)
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
	// Low-order points, their non-canonical encodings (+p) and with the
	// ignored top bit set, and other edge values: same answer as crypto/ecdh.
	p := bigLE("7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffed")
	var edge [][]byte
	for _, u := range []string{
		"00", "01", "7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffec", // 0, 1, p-1
		"00b8495f16056286fdb1329ceb8d09da6ac49ff1fae35616aeb8413b7c7aebe0", // order 8
		"57119fd0dd4e22d8868e1c58c45c44045bef839c55b1d0b1248c50a3bc959c5f", // order 8
		"7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffee", // p+1
		"7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
		"09",
	} {
		e := bigLE(u)
		edge = append(edge, e, addLE(e, p))
		hi := bytes.Clone(e)
		hi[31] |= 0x80
		edge = append(edge, hi)
	}
	for i := range 200 {
		priv := make([]byte, 32)
		rand.Read(priv)
		pub := make([]byte, 32)
		if i < len(edge) {
			pub = edge[i]
		} else {
			rand.Read(pub)
		}
		checkDHAgainstECDH(t, priv, pub)
	}
}

// checkDHAgainstECDH compares dh25519 with crypto/ecdh on one input.
func checkDHAgainstECDH(t *testing.T, priv, pub []byte) {
	t.Helper()
	got, err := dh25519{}.DH(priv, pub)
	k, _ := ecdh.X25519().NewPrivateKey(priv)
	var want []byte
	p, werr := ecdh.X25519().NewPublicKey(pub)
	if werr == nil {
		want, werr = k.ECDH(p)
	}
	if (err == nil) != (werr == nil) || !bytes.Equal(got, want) {
		t.Fatalf("DH(%x, %x) = %x, %v; crypto/ecdh: %x, %v", priv, pub, got, err, want, werr)
	}
}

// FuzzDH25519: on any input the channel's DH agrees with crypto/ecdh.
func FuzzDH25519(f *testing.F) {
	f.Add(make([]byte, 32), make([]byte, 32))
	f.Add(bytes.Repeat([]byte{1}, 32), append([]byte{9}, make([]byte, 31)...))
	f.Fuzz(func(t *testing.T, priv, pub []byte) {
		if len(priv) != 32 || len(pub) != 32 {
			return
		}
		checkDHAgainstECDH(t, priv, pub)
	})
}

// bigLE turns a big-endian hex number into 32 little-endian bytes.
func bigLE(h string) []byte {
	v, _ := new(big.Int).SetString(h, 16)
	b := v.FillBytes(make([]byte, 32))
	slices.Reverse(b)
	return b
}

// addLE adds two 32-byte little-endian numbers modulo 2^256.
func addLE(a, b []byte) []byte {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Reverse(x)
	slices.Reverse(y)
	s := new(big.Int).Add(new(big.Int).SetBytes(x), new(big.Int).SetBytes(y))
	out := make([]byte, 32)
	sb := s.Bytes()
	if len(sb) > 32 {
		sb = sb[len(sb)-32:]
	}
	copy(out[32-len(sb):], sb)
	slices.Reverse(out)
	return out
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
