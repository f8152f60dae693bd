package aggregate

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

// TestMaskKeysAuthenticated: the list a LAG relays passes each vehicle's
// check only as the vehicles sent it. Every way a LAG could slip in a key
// it holds, or reuse a genuine one elsewhere, is refused by every honest
// vehicle it would affect.
func TestMaskKeysAuthenticated(t *testing.T) {
	ca, err := newMaskCA()
	if err != nil {
		t.Fatal(err)
	}
	var session, other [16]byte
	rand.Read(session[:])
	rand.Read(other[:])
	const bus, n = "ieee13/632", 5
	newKey := func() []byte {
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k.PublicKey().Bytes()
	}
	own := make([]maskAnnounce, n)
	for i := range own {
		if own[i], err = ca.announce("ev"+string(rune('a'+i)), session, bus, newKey()); err != nil {
			t.Fatal(err)
		}
	}
	for i := range own {
		if err := ca.checkAnnouncements(session, bus, own, i, own[i]); err != nil {
			t.Fatalf("genuine list refused by vehicle %d: %v", i, err)
		}
	}
	// The LAG's own pseudonym key, certified by a CA of its own making.
	rogue, err := newMaskCA()
	if err != nil {
		t.Fatal(err)
	}
	forged, err := rogue.announce("lag", session, bus, newKey())
	if err != nil {
		t.Fatal(err)
	}
	elsewhere, err := ca.announce("evz", session, "ieee13/675", newKey())
	if err != nil {
		t.Fatal(err)
	}
	replayed, err := ca.announce("evy", other, bus, newKey())
	if err != nil {
		t.Fatal(err)
	}
	_, lagPriv, _ := ed25519.GenerateKey(rand.Reader)
	cases := []struct {
		name   string
		tamper func(l []maskAnnounce)
	}{
		{"mask key swapped, signature kept", func(l []maskAnnounce) { l[2].pk = newKey() }},
		{"mask key swapped and signed by the LAG", func(l []maskAnnounce) {
			l[2].pk = newKey()
			l[2].sig = ed25519.Sign(lagPriv, maskKeyMessage(session, bus, l[2].pk))
		}},
		{"entry certified by another CA", func(l []maskAnnounce) { l[2] = forged }},
		{"genuine entry from another bus", func(l []maskAnnounce) { l[2] = elsewhere }},
		{"genuine entry from another session", func(l []maskAnnounce) { l[2] = replayed }},
		{"one vehicle's entry twice", func(l []maskAnnounce) { l[2] = l[3] }},
	}
	for _, c := range cases {
		list := slices.Clone(own)
		c.tamper(list)
		for i := range list {
			if i == 2 {
				continue // the replaced vehicle sees its own entry changed: tested below
			}
			if err := ca.checkAnnouncements(session, bus, list, i, own[i]); !errors.Is(err, ErrMaskKey) {
				t.Errorf("%s: vehicle %d accepted the list (%v)", c.name, i, err)
			}
		}
	}
	list := slices.Clone(own)
	list[2].pk = own[3].pk
	if err := ca.checkAnnouncements(session, bus, list, 2, own[2]); !errors.Is(err, ErrMaskKey) {
		t.Errorf("a vehicle accepted a list with its own entry altered (%v)", err)
	}
}

// TestMaskingAuthenticatedMatchesNone: with authenticated keys the
// protocol runs as before, and the record says so.
func TestMaskingAuthenticatedMatchesNone(t *testing.T) {
	p := paper(t)
	base := solveWith(t, p, NewNone(p, false), 0)
	m, err := NewMasking(p, MaskingConfig{Authenticate: true}, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	sol := solveWith(t, p, m, base.Iterations)
	if d := maxDev(sol.Aggregate, base.Aggregate); d > 1e-6 || m.Params()["authenticated"] != 1 {
		t.Fatalf("authenticated masking: aggregate off none's by %.3g kW, params %v", d, m.Params())
	}
}

// TestPairKeysBindTranscript: vehicles shown different key lists derive
// different pair keys, so that a LAG that equivocates breaks the masks'
// cancellation instead of splitting the bus unnoticed.
func TestPairKeysBindTranscript(t *testing.T) {
	a, _ := ecdh.X25519().GenerateKey(rand.Reader)
	b, _ := ecdh.X25519().GenerateKey(rand.Reader)
	c, _ := ecdh.X25519().GenerateKey(rand.Reader)
	one := transcript([][]byte{a.PublicKey().Bytes(), b.PublicKey().Bytes()}, nil)
	two := transcript([][]byte{a.PublicKey().Bytes(), b.PublicKey().Bytes(), c.PublicKey().Bytes()}, nil)
	k1, err := pairKey(a, b.PublicKey(), one)
	if err != nil {
		t.Fatal(err)
	}
	k1b, _ := pairKey(b, a.PublicKey(), one)
	k2, _ := pairKey(b, a.PublicKey(), two)
	x, y, z := string(k1), string(k1b), string(k2)
	if len(x) != 16 || x != y {
		t.Fatal("the two ends of a pair derive different keys from one list")
	}
	if x == z {
		t.Fatal("a pair key does not depend on the list the LAG relayed")
	}
}

// TestMaskingDetectsUncancelledMasks: a report altered in transit, as a
// mask from a mismatched pair key would alter it, makes the SO stop with
// ErrMasksDoNotCancel instead of coordinating on a sum of noise.
func TestMaskingDetectsUncancelledMasks(t *testing.T) {
	p := paper(t)
	m, err := NewMasking(p, MaskingConfig{}, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	g := firstBus(p)
	T := p.Slots
	x := make([]float64, len(g.EVs)*T)
	sum := make([]float64, T)
	if err := m.Aggregate(0, g, x, T, sum); err != nil {
		t.Fatal(err)
	}
	m.bus[[2]int{g.Feeder, g.Bus}].tamper = func(reps []*MaskedReport) {
		var w [8]byte
		for tt := range T {
			rand.Read(w[:])
			reps[0].Words[tt] += binary.LittleEndian.Uint64(w[:]) // a foreign mask: uniform in Z_2^64
		}
	}
	if err := m.Aggregate(1, g, x, T, sum); !errors.Is(err, ErrMasksDoNotCancel) {
		t.Fatalf("a report with a foreign mask: %v, want ErrMasksDoNotCancel", err)
	}
}
