package authnet

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gridveil/gridveil/auth"
)

// TestOutdatedGroupListIsNotRevoked: a vehicle whose group list predates
// a revocation signs over a ring holding the revoked member. The LAG
// refuses it as an outdated list (auth.ErrStaleRing), not as revoked; with
// the CA's address the vehicle refreshes its list and is admitted at
// once. The revoked vehicle, refreshing the same way, is told the real
// reason: it is revoked.
func TestOutdatedGroupListIsNotRevoked(t *testing.T) {
	dir := t.TempDir()
	w := startWorld(t, dir)
	defer w.stop()
	vs := enrolled(t, dir, w.caAddr, 3)
	token, _ := ReadToken(dir + "/ca/enrol.token")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, v := range vs[:2] { // their lists hold all three
		if err := v.Enrol(ctx, w.caAddr, token, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.ca.Do(func(now time.Time, c *auth.CA) (auth.Output, error) { return c.RevokeBV(now, "BV-2") }); err != nil {
		t.Fatal(err)
	}
	lsag := auth.SessionOptions{Role: auth.RoleStorage, Schemes: []auth.Scheme{auth.SchemeLSAG}, RingSize: 3, MinRingSize: 3}
	_, err := vs[0].Connect(ctx, w.lagAddr, lsag)
	if !errors.Is(err, auth.ErrStaleRing) || errors.Is(err, auth.ErrRevoked) {
		t.Fatalf("an innocent vehicle with an outdated list: %v, want ErrStaleRing and not ErrRevoked", err)
	}
	vs[0].RefreshFrom = w.caAddr
	lsag.MinRingSize = 2 // the fresh list leaves two unrevoked members
	s, err := vs[0].Connect(ctx, w.lagAddr, lsag)
	if err != nil {
		t.Fatalf("after refreshing its list: %v", err)
	}
	if err := served(s); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// BV-2's own list does not know it is revoked; the refresh tells it.
	vs[2].RefreshFrom = w.caAddr
	if _, err := vs[2].Connect(ctx, w.lagAddr, auth.SessionOptions{Role: auth.RoleStorage, Schemes: []auth.Scheme{auth.SchemeLSAG}, RingSize: 3, MinRingSize: 3}); !errors.Is(err, auth.ErrRevoked) {
		t.Fatalf("the revoked vehicle: %v, want ErrRevoked", err)
	}
	vs[1].RefreshFrom = w.caAddr
	if _, err := vs[1].Connect(ctx, w.lagAddr, auth.SessionOptions{Role: auth.RoleStorage, Schemes: []auth.Scheme{auth.SchemeLSAG}, RingSize: 3, MinRingSize: 2}); err != nil {
		t.Fatalf("a second innocent vehicle: %v", err)
	}
}
