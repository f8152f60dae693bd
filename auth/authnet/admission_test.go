package authnet

import (
	"context"
	"encoding/hex"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/gridveil/gridveil/auth"
)

// TestAdmissionOverTCP runs per-identity admission against a CA process,
// over TCP, as vehicles and LAGs meet it: each refusal reaches the party
// with its own reason (a vehicle without a credential, with another's,
// with a used or a revoked one, with the shared token; a LAG with a
// vehicle's), a refused attempt leaves its credential usable, and the
// pseudonym cap per identity still holds for a credentialed vehicle, also
// after the CA restarted.
func TestAdmissionOverTCP(t *testing.T) {
	if testing.Short() {
		t.Skip("starts CA processes")
	}
	dir := t.TempDir()
	caDir := filepath.Join(dir, "ca")
	capEnv := caChildCapEnv + "=6"
	proc := startCAProc(t, caDir, 0, capEnv)
	defer func() { proc.kill() }()
	pub, err := ReadCAPublic(filepath.Join(caDir, "public.key"))
	if err != nil {
		t.Fatal(err)
	}
	adminKey, err := ReadAdminKey(filepath.Join(caDir, AdminKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := func(a *auth.Admin, first []byte, err error) (string, error) {
		if err != nil {
			return "", err
		}
		return RunAdmin(ctx, proc.addr, a, first)
	}
	issue := func(kind auth.CredentialKind, name string) [32]byte {
		t.Helper()
		res, err := admin(auth.NewAdminIssue(pub, adminKey, kind, name))
		if err != nil {
			t.Fatalf("issue %s %s: %v", kind, name, err)
		}
		b, err := hex.DecodeString(res)
		if err != nil || len(b) != 32 {
			t.Fatalf("issue %s %s: %q", kind, name, res)
		}
		return [32]byte(b)
	}
	vs, _ := OpenStore(filepath.Join(dir, "bv"))
	vehicle := func(name string) *Vehicle {
		t.Helper()
		v, err := OpenVehicle(vs, name, "utility-a", pub)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	enrol := func(v *Vehicle, cred [32]byte, n int) error { return v.Enrol(ctx, proc.addr, cred, n) }

	c1, c2, c3 := issue(auth.CredentialVehicle, "BV-001"), issue(auth.CredentialVehicle, "BV-002"), issue(auth.CredentialVehicle, "BV-003")
	b1, b2, b3 := vehicle("BV-001"), vehicle("BV-002"), vehicle("BV-003")
	if err := enrol(b1, [32]byte{}, 2); !errors.Is(err, ErrNoCredential) {
		t.Fatalf("a new vehicle without a credential: %v", err) // refused before it dials
	}
	// Past the vehicle's own check, the CA refuses it too.
	e, first, err := b1.BV.Enrol([32]byte{}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := RunEnrolment(ctx, proc.addr, e, first); !errors.Is(err, auth.ErrNoAdmission) {
		t.Fatalf("a new vehicle without a credential, at the CA: %v", err)
	}
	if err := enrol(b1, [32]byte{9}, 2); !errors.Is(err, auth.ErrNoAdmission) {
		t.Fatalf("a credential the CA never issued: %v", err)
	}
	if err := enrol(b2, c1, 2); !errors.Is(err, auth.ErrCredentialOther) {
		t.Fatalf("another vehicle's credential: %v", err)
	}
	if err := enrol(b1, c1, 2); err != nil {
		t.Fatalf("its own credential, after the refusals: %v", err)
	}
	if err := enrol(vehicle("BV-009"), c1, 2); !errors.Is(err, auth.ErrCredentialUsed) {
		t.Fatalf("a used credential: %v", err)
	}
	if _, err := admin(auth.NewAdminRevokeCredential(pub, adminKey, auth.CredentialVehicle, "BV-003")); err != nil {
		t.Fatal(err)
	}
	if err := enrol(b3, c3, 2); !errors.Is(err, auth.ErrCredentialRevoked) {
		t.Fatalf("a revoked credential: %v", err)
	}
	if _, err := admin(auth.NewAdminRevokeCredential(pub, adminKey, auth.CredentialVehicle, "BV-001")); !errors.Is(err, auth.ErrNotPermitted) {
		t.Fatalf("revoking a used credential: %v", err)
	}
	ls, _ := OpenStore(filepath.Join(dir, "lag-1"))
	if _, err := OpenLAG(ctx, ls, LAGOptions{ID: "lag-1", Group: "utility-a", CAAddr: proc.addr, CA: pub, Token: c2}, nil, nil); !errors.Is(err, auth.ErrCredentialOther) {
		t.Fatalf("a LAG with a vehicle's credential: %v", err)
	}
	if _, err := OpenLAG(ctx, ls, LAGOptions{ID: "lag-1", Group: "utility-a", CAAddr: proc.addr, CA: pub}, nil, nil); !errors.Is(err, ErrNoCredential) {
		t.Fatalf("a LAG without a credential: %v", err)
	}
	if _, err := OpenLAG(ctx, ls, LAGOptions{ID: "lag-1", Group: "utility-a", CAAddr: proc.addr, CA: pub, Token: issue(auth.CredentialLAG, "lag-1")}, nil, nil); err != nil {
		t.Fatalf("a LAG with its credential: %v", err)
	}

	// The cap (6 per period here) holds for an identity admitted by its
	// credential, across a restart of the CA.
	if err := enrol(b2, c2, 4); err != nil {
		t.Fatal(err)
	}
	proc.kill()
	proc = startCAProc(t, caDir, 0, capEnv)
	if err := enrol(b2, [32]byte{}, 3); !errors.Is(err, auth.ErrNotPermitted) {
		t.Fatalf("past the cap after a restart: %v", err)
	}
	if err := enrol(b2, [32]byte{}, 2); err != nil || b2.BV.Pseudonyms() != 6 {
		t.Fatalf("up to the cap: %v, %d pseudonyms", err, b2.BV.Pseudonyms())
	}

	// A CA started without --shared-token refuses the old shared token
	// with a reason that says what to do.
	keys, err := loadOrCreateCAKeys(mustStore(t, caDir))
	if err != nil {
		t.Fatal(err)
	}
	if err := enrol(vehicle("BV-OLD"), keys.EnrolToken, 1); !errors.Is(err, auth.ErrSharedToken) {
		t.Fatalf("the shared token: %v", err)
	}
}

func mustStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
