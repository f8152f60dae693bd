package auth

import (
	"errors"
	"testing"
)

// TestLAGDoesNotClaimForwardedWhenLinkDown: a status report that arrives
// while the CA link is down is dropped, and the LAG says so ("status-
// dropped", ErrUnavailable, naming the link) instead of "status-forwarded".
func TestLAGDoesNotClaimForwardedWhenLinkDown(t *testing.T) {
	n := newTestNet(t, CAConfig{}, "lag-1")
	b := n.newBV("VIN-1", "utility-a", 2)
	c := n.connect(b, "lag-1", SessionOptions{Role: RoleStorage, Schemes: []Scheme{SchemePseudonym}})
	if c.err != nil || c.s.State() != BVCharging {
		t.Fatalf("session: %v, %s", c.err, c.s.State())
	}
	var kinds []Event
	n.lagEvents = func(_ *lagNode, evs []Event) { kinds = append(kinds, evs...) }
	l := n.lags["lag-1"]
	n.lagOut(l, l.lag.CADisconnected())
	n.act(c, full(998, 41000))
	var dropped bool
	for _, e := range kinds {
		if e.Kind == "status-forwarded" {
			t.Fatalf("the LAG logged %q with the CA link down", e.String())
		}
		if e.Kind == "status-dropped" && errors.Is(e.Err, ErrUnavailable) && errors.Is(e.Err, errLinkDown) {
			dropped = true
		}
	}
	if !dropped {
		t.Fatalf("no status-dropped event: %v", kinds)
	}
}
