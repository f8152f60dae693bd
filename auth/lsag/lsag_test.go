package lsag

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"filippo.io/edwards25519"
)

func makeRing(t testing.TB, n int) (*Ring, []*PrivateKey) {
	t.Helper()
	keys := make([]*PrivateKey, n)
	pubs := make([][PointSize]byte, n)
	for i := range keys {
		k, err := GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		keys[i], pubs[i] = k, k.Public()
	}
	r, err := NewRing(pubs)
	if err != nil {
		t.Fatal(err)
	}
	return r, keys
}

func TestSignVerify(t *testing.T) {
	_, base := DeriveBase([]byte("ca secret"), []byte("lag-1/epoch-7"))
	_, other := DeriveBase([]byte("ca secret"), []byte("lag-2/epoch-7"))
	for _, n := range []int{1, 2, 5, 16} {
		ring, keys := makeRing(t, n)
		for idx := 0; idx < n; idx++ {
			msg := []byte(fmt.Sprintf("challenge %d", idx))
			sig, err := Sign(msg, ring, idx, keys[idx], base)
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParseSignature(sig.Marshal(), n)
			if err != nil {
				t.Fatal(err)
			}
			if err := Verify(msg, ring, base, back); err != nil {
				t.Fatalf("n=%d idx=%d: %v", n, idx, err)
			}
			if sig.Tag != keys[idx].Tag(base) {
				t.Fatal("tag is not x T")
			}
			if err := Verify(append(msg, '!'), ring, base, sig); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("other message: %v", err)
			}
			if err := Verify(msg, ring, other, sig); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("other base: %v", err)
			}
		}
		// Wrong index or a key outside the ring cannot sign.
		outsider, _ := GenerateKey()
		if _, err := Sign([]byte("m"), ring, 0, outsider, base); !errors.Is(err, ErrRing) {
			t.Fatalf("outsider signed: %v", err)
		}
	}
}

// TestOtherRing: a signature does not verify over a ring with one member
// swapped, nor over the same members in another order.
func TestOtherRing(t *testing.T) {
	_, base := DeriveBase([]byte("s"), []byte("scope"))
	ring, keys := makeRing(t, 4)
	sig, _ := Sign([]byte("m"), ring, 2, keys[2], base)
	swapped := append([][PointSize]byte(nil), ring.enc...)
	k, _ := GenerateKey()
	swapped[0] = k.Public()
	r2, _ := NewRing(swapped)
	perm := [][PointSize]byte{ring.enc[1], ring.enc[0], ring.enc[2], ring.enc[3]}
	r3, _ := NewRing(perm)
	for _, r := range []*Ring{r2, r3} {
		if err := Verify([]byte("m"), r, base, sig); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("verified over another ring: %v", err)
		}
	}
}

// TestLinkability: one key under one base always yields the same tag, in
// any ring; another base or key yields another tag.
func TestLinkability(t *testing.T) {
	_, b1 := DeriveBase([]byte("s"), []byte("scope-1"))
	_, b2 := DeriveBase([]byte("s"), []byte("scope-2"))
	ringA, keys := makeRing(t, 6)
	ringB, err := NewRing([][PointSize]byte{ringA.enc[3], ringA.enc[5]})
	if err != nil {
		t.Fatal(err)
	}
	s1, _ := Sign([]byte("a"), ringA, 3, keys[3], b1)
	s2, _ := Sign([]byte("b"), ringB, 0, keys[3], b1)
	s3, _ := Sign([]byte("a"), ringA, 3, keys[3], b2)
	s4, _ := Sign([]byte("a"), ringA, 5, keys[5], b1)
	if s1.Tag != s2.Tag {
		t.Fatal("same key, same scope: tags differ")
	}
	if s1.Tag == s3.Tag || s1.Tag == s4.Tag {
		t.Fatal("tags collide across scopes or keys")
	}
}

// TestTorsionTag: a tag with a small-order component added (the attack that
// would give one key two tags) is refused.
func TestTorsionTag(t *testing.T) {
	_, base := DeriveBase([]byte("s"), []byte("scope"))
	ring, keys := makeRing(t, 3)
	sig, _ := Sign([]byte("m"), ring, 1, keys[1], base)
	order2 := append(bytes.Repeat([]byte{0xff}, 31), 0x7f)
	order2[0] = 0xec
	t2, err := new(edwards25519.Point).SetBytes(order2)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := new(edwards25519.Point).SetBytes(sig.Tag[:])
	bad := *sig
	bad.Tag = [PointSize]byte(new(edwards25519.Point).Add(tag, t2).Bytes())
	if err := Verify([]byte("m"), ring, base, &bad); !errors.Is(err, ErrBadPoint) {
		t.Fatalf("torsioned tag: %v", err)
	}
	if _, err := NewRing([][PointSize]byte{ring.enc[0], [PointSize]byte(order2)}); !errors.Is(err, ErrBadPoint) {
		t.Fatalf("small-order ring member: %v", err)
	}
	if _, err := NewRing([][PointSize]byte{ring.enc[0], ring.enc[0]}); !errors.Is(err, ErrRing) {
		t.Fatalf("repeated member: %v", err)
	}
}

// TestTamperEveryByte: flipping any bit of a signature makes it fail.
func TestTamperEveryByte(t *testing.T) {
	_, base := DeriveBase([]byte("s"), []byte("scope"))
	ring, keys := makeRing(t, 3)
	sig, _ := Sign([]byte("m"), ring, 0, keys[0], base)
	enc := sig.Marshal()
	for i := range enc {
		b := bytes.Clone(enc)
		b[i] ^= 0x04
		s, err := ParseSignature(b, 3)
		if err == nil {
			err = Verify([]byte("m"), ring, base, s)
		}
		if err == nil {
			t.Fatalf("byte %d flipped: accepted", i)
		}
	}
}

func TestTrace(t *testing.T) {
	tsec, base := DeriveBase([]byte("ca"), []byte("lag-1/epoch-9"))
	ring, keys := makeRing(t, 8)
	for i, k := range keys {
		sig, _ := Sign([]byte("m"), ring, i, k, base)
		if got := Trace(sig.Tag, ring, tsec); got != i {
			t.Fatalf("traced to %d, want %d", got, i)
		}
	}
	wrong, _ := DeriveBase([]byte("not the ca"), []byte("lag-1/epoch-9"))
	sig, _ := Sign([]byte("m"), ring, 4, keys[4], base)
	if got := Trace(sig.Tag, ring, wrong); got != -1 {
		t.Fatalf("traced with the wrong secret to %d", got)
	}
}

func TestKeyRoundTrip(t *testing.T) {
	k, _ := GenerateKey()
	k2, err := NewPrivateKey(k.Bytes())
	if err != nil || k2.Public() != k.Public() {
		t.Fatal(err)
	}
	if _, err := NewPrivateKey(make([]byte, 32)); err == nil {
		t.Fatal("zero key accepted")
	}
}

// FuzzParseVerify: arbitrary bytes never panic ParseSignature or Verify, and
// never verify.
func FuzzParseVerify(f *testing.F) {
	_, base := DeriveBase([]byte("s"), []byte("scope"))
	ring, keys := makeRing(f, 2)
	sig, _ := Sign([]byte("m"), ring, 0, keys[0], base)
	f.Add(sig.Marshal())
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSignature(b, 2)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatal(err)
			}
			return
		}
		if Verify([]byte("m"), ring, base, s) == nil && !bytes.Equal(b, sig.Marshal()) {
			// Another valid signature on the same message by a member is
			// possible only with a secret key: the fuzzer has none.
			t.Fatalf("fuzzer forged % x", b)
		}
	})
}

func BenchmarkSign(b *testing.B) {
	_, base := DeriveBase([]byte("s"), []byte("scope"))
	for _, n := range []int{1, 16, 64, 100} {
		ring, keys := makeRing(b, n)
		b.Run(fmt.Sprintf("ring=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := Sign([]byte("m"), ring, n/2, keys[n/2], base); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	_, base := DeriveBase([]byte("s"), []byte("scope"))
	for _, n := range []int{1, 16, 64, 100} {
		ring, keys := makeRing(b, n)
		sig, _ := Sign([]byte("m"), ring, 0, keys[0], base)
		b.Run(fmt.Sprintf("ring=%d", n), func(b *testing.B) {
			for b.Loop() {
				if err := Verify([]byte("m"), ring, base, sig); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
