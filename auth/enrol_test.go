package auth

import (
	"errors"
	"testing"
)

// TestEnrolmentBindsKeys: the first enrolment binds an identity to its
// identity and LSAG keys; another party with the token cannot enrol that
// identity again with keys of its own (a Type I key replacement at the CA)
// or move it to another group. The same vehicle may refill.
func TestEnrolmentBindsKeys(t *testing.T) {
	n := newTestNet(t, CAConfig{}, "lag-1")
	b := n.newBV("VIN-1", "utility-a", 1)
	for _, group := range []string{"utility-a", "utility-b"} {
		impostor, err := NewBV("VIN-1", group, n.ca.Public())
		if err != nil {
			t.Fatal(err)
		}
		if err := n.tryEnrol(impostor, 1, n.keys.EnrolToken); !errors.Is(err, ErrNotPermitted) {
			t.Fatalf("re-enrolment of VIN-1 with other keys in %s: %v", group, err)
		}
	}
	if err := n.tryEnrol(b, 2, n.keys.EnrolToken); err != nil || b.Pseudonyms() != 3 {
		t.Fatalf("refill: %v, %d pseudonyms", err, b.Pseudonyms())
	}
}
