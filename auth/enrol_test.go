package auth

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
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
	if err := n.tryEnrol(b, 2, [32]byte{}); err != nil || b.Pseudonyms() != 3 {
		t.Fatalf("refill: %v, %d pseudonyms", err, b.Pseudonyms())
	}
}

// TestPseudonymCapPerIdentity: one identity cannot obtain pseudonyms past
// CAConfig.MaxPseudonymsPerPeriod in one period, however it splits its
// requests, and the refusal says how many it may still ask for; a CA
// restored from its records keeps the count; the next period starts
// afresh.
func TestPseudonymCapPerIdentity(t *testing.T) {
	n := newTestNet(t, CAConfig{MaxPseudonymsPerPeriod: 10}, "lag-1")
	b := n.newBV("VIN-1", "utility-a", 6)
	if err := n.tryEnrol(b, 5, n.keys.EnrolToken); !errors.Is(err, ErrNotPermitted) {
		t.Fatalf("6+5 of 10 pseudonyms: %v", err)
	}
	if !slices.ContainsFunc(n.events, func(e Event) bool {
		return strings.Contains(e.String(), "has 6 of its 10 pseudonyms for this period and asked for 5 more: ask for at most 4")
	}) {
		t.Fatalf("the refusal does not name the cap: %v", n.events)
	}
	if err := n.tryEnrol(b, 4, n.keys.EnrolToken); err != nil || b.Pseudonyms() != 10 {
		t.Fatalf("up to the cap: %v, %d pseudonyms", err, b.Pseudonyms())
	}
	// Restored from its records (as from state.db), the CA still counts.
	recs := n.ca.Records()
	ca, err := RestoreCAFrom(n.keys, CAConfig{MaxPseudonymsPerPeriod: 10}, func(table string, fn func(k, v []byte) error) error {
		for _, r := range recs {
			if r.Table == table {
				if err := fn(r.Key, r.Value); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	n.ca = ca
	if err := n.tryEnrol(b, 1, n.keys.EnrolToken); !errors.Is(err, ErrNotPermitted) {
		t.Fatalf("past the cap after a restore: %v", err)
	}
	n.now = n.now.Add(24 * time.Hour)
	if err := n.tryEnrol(b, 10, n.keys.EnrolToken); err != nil {
		t.Fatalf("the next period: %v", err)
	}
}
