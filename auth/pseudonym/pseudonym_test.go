package pseudonym

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"testing"
	"time"

	"filippo.io/edwards25519"
)

type testCA struct {
	sign  ed25519.PrivateKey
	pub   ed25519.PublicKey
	trace hpke.PrivateKey
	tpub  hpke.PublicKey
}

func newCA(t testing.TB) *testCA {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ecdh.X25519().GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := hpke.NewDHKEMPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := hpke.NewDHKEMPublicKey(k.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{priv, pub, tr, tp}
}

var t0 = time.Unix(1_750_000_000, 0)

func (ca *testCA) issue(t testing.TB, id string) (*Cert, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(nil)
	c, err := Issue(ca.sign, ca.tpub, id, "utility-a", pub, t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return c, priv
}

func TestIssueVerifyTrace(t *testing.T) {
	ca := newCA(t)
	for _, id := range []string{"VIN-1", "a", string(bytes.Repeat([]byte{'x'}, MaxIdentity))} {
		c, _ := ca.issue(t, id)
		back, err := ParseCert(c.Marshal())
		if err != nil || *back != *c {
			t.Fatalf("round trip: %v", err)
		}
		if err := back.CheckSignature(ca.pub); err != nil {
			t.Fatal(err)
		}
		if err := back.CheckValidity(t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		got, err := OpenTraceTag(ca.trace, back)
		if err != nil || got != id {
			t.Fatalf("traced %q, %v; want %q", got, err, id)
		}
		if len(id) > 3 && bytes.Contains(c.Marshal(), []byte(id)) {
			t.Fatal("identity in clear in the certificate")
		}
	}
}

// TestOnlyCATraces: another key, or the right key on a tag moved to another
// certificate, does not open the tag.
func TestOnlyCATraces(t *testing.T) {
	ca, other := newCA(t), newCA(t)
	c, _ := ca.issue(t, "VIN-1")
	if _, err := OpenTraceTag(other.trace, c); !errors.Is(err, ErrTraceTag) {
		t.Fatalf("other key opened the tag: %v", err)
	}
	d, _ := ca.issue(t, "VIN-2")
	d.TraceTag = c.TraceTag
	if _, err := OpenTraceTag(ca.trace, d); !errors.Is(err, ErrTraceTag) {
		t.Fatalf("moved tag opened: %v", err)
	}
}

// TestTamperEveryByte: flipping any bit of a certificate makes it fail to
// parse or fail the signature check.
func TestTamperEveryByte(t *testing.T) {
	ca := newCA(t)
	c, _ := ca.issue(t, "VIN-1")
	enc := c.Marshal()
	for i := range enc {
		bad := bytes.Clone(enc)
		bad[i] ^= 0x01
		d, err := ParseCert(bad)
		if err == nil {
			err = d.CheckSignature(ca.pub)
		}
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadSignature) {
			t.Fatalf("byte %d flipped: accepted (%v)", i, err)
		}
	}
}

func TestValidityAndKeys(t *testing.T) {
	ca := newCA(t)
	c, _ := ca.issue(t, "VIN-1")
	cases := []struct {
		at   time.Time
		want error
	}{
		{t0.Add(-time.Second), ErrNotYetValid},
		{t0, nil},
		{t0.Add(time.Hour - time.Second), nil},
		{t0.Add(time.Hour), ErrExpired},
	}
	for _, tc := range cases {
		if err := c.CheckValidity(tc.at); !errors.Is(err, tc.want) {
			t.Errorf("at %v: %v, want %v", tc.at.Sub(t0), err, tc.want)
		}
	}
	identity := append([]byte{1}, make([]byte, 31)...) // the neutral element
	order2 := append(bytes.Repeat([]byte{0xff}, 31), 0x7f)
	order2[0] = 0xec // y = -1: a point of order 2
	nonCanon := append(bytes.Repeat([]byte{0xff}, 31), 0x7f)
	for _, k := range [][]byte{identity, order2, nonCanon, make([]byte, 31)} {
		if _, err := Issue(ca.sign, ca.tpub, "VIN", "g", k, t0, t0.Add(time.Hour)); !errors.Is(err, ErrBadKey) {
			t.Errorf("key % x certified: %v", k, err)
		}
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	if _, err := Issue(ca.sign, ca.tpub, "VIN", "g", pub, t0, t0); err == nil {
		t.Error("empty window accepted")
	}
}

func makeEntries(t testing.TB, ca *testCA, n int) []Entry {
	t.Helper()
	var es []Entry
	for i := 0; i < n; i++ {
		c, priv := ca.issue(t, fmt.Sprintf("VIN-%d", i))
		msg := []byte(fmt.Sprintf("challenge %d", i))
		es = append(es,
			Entry{ca.pub, c.SignedMessage(), c.Sig[:]},
			Entry{c.Key[:], msg, ed25519.Sign(priv, msg)})
	}
	return es
}

func TestBatch(t *testing.T) {
	ca := newCA(t)
	es := makeEntries(t, ca, 100) // 200 signatures: two chunks of the batch equation
	other, _, _ := ed25519.GenerateKey(nil)
	if !VerifyBatch(es) || !VerifyBatch(nil) {
		t.Fatal("valid batch refused")
	}
	corrupt := []struct {
		name string
		mod  func(e *Entry)
	}{
		{"message", func(e *Entry) { e.Message = append(bytes.Clone(e.Message), 0) }},
		{"R", func(e *Entry) { e.Signature = bytes.Clone(e.Signature); e.Signature[3] ^= 1 }},
		{"s", func(e *Entry) { e.Signature = bytes.Clone(e.Signature); e.Signature[40] ^= 1 }},
		{"s not canonical", func(e *Entry) { e.Signature = bytes.Clone(e.Signature); e.Signature[63] |= 0xf0 }},
		{"key", func(e *Entry) { e.PublicKey = other }},
		{"short sig", func(e *Entry) { e.Signature = e.Signature[:63] }},
	}
	for _, c := range corrupt {
		for _, at := range []int{0, 17, len(es) - 1} {
			cp := append([]Entry(nil), es...)
			c.mod(&cp[at])
			if VerifyBatch(cp) {
				t.Fatalf("%s corrupted at %d: batch accepted", c.name, at)
			}
			ok := VerifyEach(cp)
			for i, v := range ok {
				if v != (i != at) {
					t.Fatalf("%s corrupted at %d: entry %d reported %v", c.name, at, i, v)
				}
			}
		}
	}
}

// FuzzParseCert: no input panics ParseCert; whatever parses re-encodes to
// the same bytes.
func FuzzParseCert(f *testing.F) {
	ca := newCA(f)
	c, _ := ca.issue(f, "VIN-1")
	f.Add(c.Marshal())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCert(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if !bytes.Equal(c.Marshal(), b) {
			t.Fatal("does not re-encode")
		}
		_ = c.CheckSignature(ca.pub)
		_, _ = OpenTraceTag(ca.trace, c)
	})
}

func BenchmarkIssue(b *testing.B) {
	ca := newCA(b)
	pub, _, _ := ed25519.GenerateKey(nil)
	for b.Loop() {
		if _, err := Issue(ca.sign, ca.tpub, "VIN-1", "utility-a", pub, t0, t0.Add(time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifySequential: one op = one credential (certificate and
// session signature), verified with crypto/ed25519 one signature at a time.
func BenchmarkVerifySequential(b *testing.B) {
	es := makeEntries(b, newCA(b), 256)
	i := 0
	for b.Loop() {
		e, f := es[2*i], es[2*i+1]
		if !ed25519.Verify(e.PublicKey, e.Message, e.Signature) || !ed25519.Verify(f.PublicKey, f.Message, f.Signature) {
			b.Fatal("invalid")
		}
		i = (i + 1) % 256
	}
}

// BenchmarkVerifyBatch: one op = a batch of n credentials (2n signatures).
func BenchmarkVerifyBatch(b *testing.B) {
	benchBatch(b)
}

// BenchmarkBatchVsOwn is issue 18's comparison: on the same batch of n
// credentials (2n signatures: the CA's on each certificate and the
// pseudonym's on its challenge), VerifyBatch (curve25519-voi) and the
// previous filippo.io/edwards25519 batch (batch_own_test.go), alternating
// within each iteration, each round starting with the other. It reports
// each one's signatures per second and voi/own.
func BenchmarkBatchVsOwn(b *testing.B) {
	all := makeEntries(b, newCA(b), 1024)
	for _, n := range []int{7, 16, 128, 1024} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) { batchVsOwn(b, all[:2*n]) })
	}
}

func batchVsOwn(b *testing.B, es []Entry) {
	var tv, to time.Duration
	round := 0
	for b.Loop() {
		for k := 0; k < 2; k++ {
			t0 := time.Now()
			if (round+k)%2 == 0 {
				if !VerifyBatch(es) {
					b.Fatal("voi refused a valid batch")
				}
				tv += time.Since(t0)
			} else {
				if !ownVerifyBatch(es) {
					b.Fatal("own refused a valid batch")
				}
				to += time.Since(t0)
			}
		}
		round++
	}
	n := float64(round * len(es))
	b.ReportMetric(n/tv.Seconds(), "voi-sig/s")
	b.ReportMetric(n/to.Seconds(), "own-sig/s")
	b.ReportMetric(to.Seconds()/tv.Seconds(), "voi/own")
}

// TestBatchAgreesWithOwn: on random batches with random corruptions
// (message, R, s, key, in random places), VerifyBatch, the previous
// implementation and signature-by-signature verification agree, and
// VerifyEach names exactly the corrupted entries.
func TestBatchAgreesWithOwn(t *testing.T) {
	ca := newCA(t)
	all := makeEntries(t, ca, 150)
	rng := mrand.New(mrand.NewPCG(18, 1))
	for trial := 0; trial < 60; trial++ {
		n := 1 + rng.IntN(len(all))
		es := slices.Clone(all[:n])
		bad := map[int]bool{}
		for c := rng.IntN(3); c > 0; c-- {
			at := rng.IntN(n)
			e := es[at]
			switch rng.IntN(4) {
			case 0:
				e.Message = append(bytes.Clone(e.Message), byte(rng.IntN(256)))
			case 1:
				e.Signature = bytes.Clone(e.Signature)
				e.Signature[rng.IntN(32)] ^= 1 << rng.IntN(8)
			case 2:
				e.Signature = bytes.Clone(e.Signature)
				e.Signature[32+rng.IntN(31)] ^= 1 << rng.IntN(8)
			case 3:
				e.PublicKey = all[(at+2)%len(all)].PublicKey
			}
			es[at] = e
			bad[at] = !ed25519.Verify(e.PublicKey, e.Message, e.Signature) || bad[at]
		}
		want := true
		for _, b := range bad {
			want = want && !b
		}
		if got, own := VerifyBatch(es), ownVerifyBatch(es); got != want || own != want {
			t.Fatalf("trial %d (%d signatures, corrupted %v): VerifyBatch %v, previous %v, one by one %v", trial, n, bad, got, own, want)
		}
		for i, ok := range VerifyEach(es) {
			if ok == bad[i] {
				t.Fatalf("trial %d: entry %d reported %v, corrupted %v", trial, i, ok, bad[i])
			}
		}
	}
}

func benchBatch(b *testing.B) {
	ca := newCA(b)
	all := makeEntries(b, ca, 1024)
	for _, n := range []int{16, 128, 1024} {
		es := all[:2*n]
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			for b.Loop() {
				if !VerifyBatch(es) {
					b.Fatal("invalid")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/credential")
		})
	}
}

// TestCanonicalPoint: canonicalPoint agrees with re-encoding the decoded
// point, on random points, on every non-canonical y (y + p for the y below
// 19 that are on the curve) and on a sign bit with x = 0.
func TestCanonicalPoint(t *testing.T) {
	var cases [][]byte
	for range 500 {
		var s [64]byte
		rand.Read(s[:])
		k, _ := edwards25519.NewScalar().SetUniformBytes(s[:])
		b := new(edwards25519.Point).ScalarBaseMult(k).Bytes()
		cases = append(cases, b)
		flipped := bytes.Clone(b)
		flipped[31] ^= 0x80
		cases = append(cases, flipped)
	}
	for y := range 19 {
		// y + p = y + 2^255 - 19: little-endian bytes of 2^255 - 19 + y.
		b := make([]byte, 32)
		b[0] = byte(0xed + y)
		for i := 1; i < 31; i++ {
			b[i] = 0xff
		}
		b[31] = 0x7f
		small := make([]byte, 32)
		small[0] = byte(y)
		cases = append(cases, b, small)
		for _, c := range [][]byte{b, small} {
			s := bytes.Clone(c)
			s[31] |= 0x80
			cases = append(cases, s)
		}
	}
	minusOne := bytes.Repeat([]byte{0xff}, 32)
	minusOne[0], minusOne[31] = 0xec, 0x7f
	cases = append(cases, minusOne, append(bytes.Clone(minusOne[:31]), 0xff))
	decoded := 0
	for _, b := range cases {
		p, err := new(edwards25519.Point).SetBytes(b)
		if err != nil {
			continue
		}
		decoded++
		if want := bytes.Equal(p.Bytes(), b); canonicalPoint(b) != want {
			t.Fatalf("%x: canonicalPoint %v, re-encoding says %v", b, !want, want)
		}
	}
	if decoded < 1000 {
		t.Fatalf("only %d cases decode", decoded)
	}
}
