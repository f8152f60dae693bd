package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/flynn/noise"

	"github.com/gridveil/gridveil/auth/wire"
)

// runEnrolment carries an enrolment exchange with the test net's CA.
func (n *testNet) runEnrolment(e *Enrolment, frame []byte) error {
	id := n.ca.Open()
	defer n.ca.Close(id)
	for frame != nil {
		out, err := n.ca.Receive(n.now, id, frame)
		n.events = append(n.events, out.Events...)
		frame = nil
		var pushes Output // to linked LAGs
		for _, f := range out.Frames {
			if f.To != id {
				pushes.Frames = append(pushes.Frames, f)
				continue
			}
			if len(f.Data) > wire.MaxFrame {
				return fmt.Errorf("an enrolment frame of %d bytes, over the limit of %d", len(f.Data), wire.MaxFrame)
			}
			next, rerr := e.Receive(f.Data)
			if rerr != nil {
				return rerr
			}
			frame = next
		}
		n.caOut(pushes)
		n.run()
		if err != nil {
			return err
		}
	}
	if !e.Done() {
		return errors.New("enrolment did not finish")
	}
	return nil
}

// enrolLAG enrols a LAG with fresh keys, presenting secret.
func (n *testNet) enrolLAG(id string, secret [32]byte) error {
	nk, _ := noise.DH25519.GenerateKeypair(rand.Reader)
	_, sk, _ := ed25519.GenerateKey(rand.Reader)
	le, first, err := EnrolLAG(n.ca.Public(), secret, id, "utility-a", nk, sk)
	if err != nil {
		return err
	}
	return n.runEnrolment(le.Enrolment, first)
}

// TestPerIdentityAdmission: a new vehicle enrols only with the credential
// the CA issued for its name, once; every other attempt is refused with
// its own reason, and a refused attempt spends nothing. A LAG needs a LAG
// credential. The shared token is refused unless CAConfig.SharedToken
// keeps it, and the credentials' states survive a restore from the
// CA's records.
func TestPerIdentityAdmission(t *testing.T) {
	n := newTestNet(t, CAConfig{}, "lag-1")
	issue := func(kind CredentialKind, name string) [32]byte {
		t.Helper()
		s, _, err := n.ca.IssueCredential(n.now, kind, name)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	bv := func(name string) *BV {
		b, err := NewBV(name, "utility-a", n.ca.Public())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	c1, c2 := issue(CredentialVehicle, "VIN-1"), issue(CredentialVehicle, "VIN-2")
	b1, b2 := bv("VIN-1"), bv("VIN-2")
	cases := []struct {
		what   string
		b      *BV
		secret [32]byte
		want   error
	}{
		{"no credential", b1, [32]byte{}, ErrNoAdmission},
		{"a credential the CA never issued", b1, [32]byte{7}, ErrNoAdmission},
		{"another vehicle's credential", b2, c1, ErrCredentialOther},
		{"the shared enrolment token", b1, n.keys.EnrolToken, ErrSharedToken},
	}
	for _, tc := range cases {
		if err := n.tryEnrol(tc.b, 1, tc.secret); !errors.Is(err, tc.want) {
			t.Fatalf("%s: %v, want %v", tc.what, err, tc.want)
		}
	}
	if _, known := n.ca.Vehicle("VIN-1"); known {
		t.Fatal("a refused enrolment registered its vehicle")
	}
	if err := n.tryEnrol(b1, 2, c1); err != nil {
		t.Fatalf("with its own credential: %v", err)
	}
	if err := n.tryEnrol(b1, 1, [32]byte{}); err != nil || b1.Pseudonyms() != 3 {
		t.Fatalf("a refill needs no credential: %v, %d pseudonyms", err, b1.Pseudonyms())
	}
	// The credential is spent: a clone with other keys is refused as its
	// reuse, under the name or another.
	clone := bv("VIN-1")
	if err := n.tryEnrol(clone, 1, c1); !errors.Is(err, ErrCredentialUsed) {
		t.Fatalf("a used credential under its name: %v", err)
	}
	if err := n.tryEnrol(bv("VIN-9"), 1, c1); !errors.Is(err, ErrCredentialUsed) {
		t.Fatalf("a used credential under another name: %v", err)
	}
	// Revoked before use: refused; reissued: the new one works, the old
	// one stays revoked.
	if _, err := n.ca.RevokeCredential(n.now, CredentialVehicle, "VIN-2"); err != nil {
		t.Fatal(err)
	}
	if err := n.tryEnrol(b2, 1, c2); !errors.Is(err, ErrCredentialRevoked) {
		t.Fatalf("a revoked credential: %v", err)
	}
	c2b := issue(CredentialVehicle, "VIN-2")
	if err := n.tryEnrol(b2, 1, c2); !errors.Is(err, ErrCredentialRevoked) {
		t.Fatalf("the replaced credential: %v", err)
	}
	if err := n.tryEnrol(b2, 1, c2b); err != nil {
		t.Fatalf("the new credential: %v", err)
	}
	// A used credential cannot be revoked, nor one issued for an
	// enrolled identity: the refusals say what to do instead.
	if _, err := n.ca.RevokeCredential(n.now, CredentialVehicle, "VIN-1"); !errors.Is(err, ErrNotPermitted) || !strings.Contains(err.Error(), "gridveil ca revoke") {
		t.Fatalf("revoking a used credential: %v", err)
	}
	if _, _, err := n.ca.IssueCredential(n.now, CredentialVehicle, "VIN-1"); !errors.Is(err, ErrNotPermitted) {
		t.Fatalf("a credential for an enrolled vehicle: %v", err)
	}
	if _, err := n.ca.RevokeCredential(n.now, CredentialVehicle, "VIN-404"); !errors.Is(err, ErrUnknown) {
		t.Fatalf("revoking a credential never issued: %v", err)
	}

	// LAGs: a LAG credential enrols the LAG it names; a vehicle's does not.
	l3 := issue(CredentialLAG, "lag-3")
	c4 := issue(CredentialVehicle, "lag-4")
	if err := n.enrolLAG("lag-4", c4); !errors.Is(err, ErrCredentialOther) {
		t.Fatalf("a LAG with a vehicle's credential: %v", err)
	}
	if err := n.enrolLAG("lag-4", n.keys.EnrolToken); !errors.Is(err, ErrSharedToken) {
		t.Fatalf("a LAG with the shared token: %v", err)
	}
	if err := n.tryEnrol(bv("VIN-3"), 1, l3); !errors.Is(err, ErrCredentialOther) {
		t.Fatalf("a vehicle with a LAG's credential: %v", err)
	}
	if err := n.enrolLAG("lag-3", l3); err != nil {
		t.Fatalf("a LAG with its credential: %v", err)
	}
	if err := n.enrolLAG("lag-5", l3); !errors.Is(err, ErrCredentialUsed) {
		t.Fatalf("a used LAG credential: %v", err)
	}

	// Every state survives a restore from the records.
	recs := n.ca.Records()
	ca, err := RestoreCAFrom(n.keys, CAConfig{}, func(table string, fn func(k, v []byte) error) error {
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
	for _, tc := range []struct {
		name  string
		kind  CredentialKind
		state string
	}{{"VIN-1", CredentialVehicle, "used"}, {"VIN-2", CredentialVehicle, "used"}, {"lag-3", CredentialLAG, "used"}, {"lag-4", CredentialVehicle, "issued"}} {
		if v, ok := ca.Credential(tc.kind, tc.name); !ok || v.State != tc.state {
			t.Fatalf("%s %s after a restore: %+v %v", tc.kind, tc.name, v, ok)
		}
	}
	if err := n.tryEnrol(bv("VIN-1"), 1, c1); !errors.Is(err, ErrCredentialUsed) {
		t.Fatalf("a used credential after a restore: %v", err)
	}
	if err := n.tryEnrol(b2, 1, c2); err != nil {
		t.Fatalf("a refill after a restore: %v", err) // b2 is enrolled: the old secret is ignored
	}

	// A migration keeps the shared token, and logs each use.
	m := newTestNet(t, CAConfig{SharedToken: true}, "lag-1")
	old := bv("VIN-OLD")
	old.ca = m.ca.Public()
	if err := m.tryEnrol(old, 1, m.keys.EnrolToken); err != nil {
		t.Fatalf("the shared token during a migration: %v", err)
	}
	found := false
	for _, e := range m.events {
		found = found || e.Kind == "shared-token"
	}
	if !found {
		t.Fatal("an admission by the shared token was not logged")
	}
}
