package charging

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
)

// TestSealRefusesForgeries checks that a vehicle accepts a broadcast or a
// drop notice only with the SO's signature over exactly those bytes.
func TestSealRefusesForgeries(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	b := Broadcast{Round: 4, Iter: 3, Phase: PhaseStep, Feeder: 0, Bus: 2, Tau: 0.1, Aggregate: []float64{1, 2}, Price: []float64{0, 0}}
	good, err := SealBroadcast(&b, key)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := OpenBroadcast(good, pub); err != nil || got.Round != 4 {
		t.Fatalf("the SO's own broadcast refused: %v", err)
	}
	forged, _ := SealBroadcast(&b, other)
	unsigned, _ := b.MarshalBinary()
	tampered := append([]byte(nil), good...)
	tampered[len(unsigned)-1] ^= 1 // the last price value
	d := Dropped{Feeder: 0, Bus: 2, Sender: "ps-1", Kept: 3}
	dropGood, _ := SealDropped(&d, key)
	dropForged, _ := SealDropped(&d, other)
	for name, c := range map[string]struct {
		data []byte
		open func([]byte, ed25519.PublicKey) error
	}{
		"broadcast signed by another key":  {forged, func(x []byte, k ed25519.PublicKey) error { _, err := OpenBroadcast(x, k); return err }},
		"unsigned broadcast":               {unsigned, func(x []byte, k ed25519.PublicKey) error { _, err := OpenBroadcast(x, k); return err }},
		"tampered broadcast":               {tampered, func(x []byte, k ed25519.PublicKey) error { _, err := OpenBroadcast(x, k); return err }},
		"drop notice signed by another":    {dropForged, func(x []byte, k ed25519.PublicKey) error { _, err := OpenDropped(x, k); return err }},
		"broadcast bytes as a drop notice": {good, func(x []byte, k ed25519.PublicKey) error { _, err := OpenDropped(x, k); return err }},
	} {
		err := c.open(c.data, pub)
		if !errors.Is(err, ErrForged) && !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s: accepted (%v)", name, err)
		}
	}
	if _, err := OpenDropped(dropGood, pub); err != nil {
		t.Fatalf("the SO's own drop notice refused: %v", err)
	}
}
