package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"sort"
	"time"

	"github.com/gridveil/gridveil/auth/wire"
)

// Per-identity admission. A new identity enrols only with an enrolment
// credential the operator had the CA issue for it by name (IssueCredential,
// `gridveil ca issue`): a 32-byte secret from crypto/rand that the CA
// stores only as its SHA-256, for one kind of party (a vehicle, or a LAG)
// and one name. The first enrolment that presents it binds the name to the
// keys that signed that enrolment and spends the credential; from then on
// the identity's own key authenticates it (a vehicle's refills, a LAG's
// renewals), so a stolen credential is worth nothing once used, and one
// that leaks before use is revoked (RevokeCredential) and issued again.
//
// The shared enrolment token of earlier versions (CAKeys.EnrolToken),
// which anyone holding it could use to invent identities and LAGs, is
// refused with ErrSharedToken unless CAConfig.SharedToken keeps it for a
// migration. Identities it enrolled keep working without a credential:
// they are bound to their keys already.

// CredentialKind is the kind of party an enrolment credential admits.
type CredentialKind uint8

// Kinds of enrolment credential: a vehicle's does not enrol a LAG, nor the
// other way round.
const (
	CredentialVehicle CredentialKind = 1
	CredentialLAG     CredentialKind = 2
)

func (k CredentialKind) String() string {
	switch k {
	case CredentialVehicle:
		return "vehicle"
	case CredentialLAG:
		return "lag"
	}
	return fmt.Sprintf("credential-kind-%d", uint8(k))
}

// ParseCredentialKind reads "vehicle" or "lag".
func ParseCredentialKind(s string) (CredentialKind, error) {
	switch s {
	case "vehicle":
		return CredentialVehicle, nil
	case "lag":
		return CredentialLAG, nil
	}
	return 0, fmt.Errorf("credential kind %q: use vehicle or lag", s)
}

// credState is where an enrolment credential is in its life.
type credState uint8

const (
	credIssued  credState = 0
	credUsed    credState = 1
	credRevoked credState = 2
)

// admissionCred is what the CA keeps of an enrolment credential: never the
// secret, only its hash (the map key).
type admissionCred struct {
	kind     CredentialKind
	name     string
	state    credState
	issuedAt int64
	doneAt   int64  // when it was used or revoked
	seq      uint64 // order of issue: a name's latest credential is the one that counts
}

type credName struct {
	kind CredentialKind
	name string
}

// TableCredentials holds one record per enrolment credential ever issued,
// keyed by the SHA-256 of its secret: kind, name, state and times. Used and
// revoked ones are kept so that a second use is refused with its reason.
const TableCredentials = "credentials"

// credHash is what the CA stores of a credential's secret.
func credHash(secret [32]byte) [32]byte {
	return sha256.Sum256(append([]byte("gridveil/enrolment-credential/v1\x00"), secret[:]...))
}

func (c *CA) markCred(h [32]byte) {
	if c.dirty.creds == nil {
		c.dirty.creds = map[[32]byte]bool{}
	}
	c.dirty.creds[h] = true
}

// IssueCredential issues an enrolment credential for the vehicle or LAG
// named name and returns its secret, to be handed to that party out of
// band. The CA keeps only the secret's hash, and the change is durable
// before the shell confirms it (TakeChanges). A credential issued earlier
// for the same name and not used is revoked: the latest one counts. An
// identity that is enrolled already is refused: it needs no credential (it
// authenticates with its own keys), and to exclude it, revoke it.
func (c *CA) IssueCredential(now time.Time, kind CredentialKind, name string) ([32]byte, Output, error) {
	var out Output
	var secret [32]byte
	if err := c.credentialTarget(kind, name); err != nil {
		return secret, out, err
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return secret, out, err
	}
	key := credName{kind, name}
	if old, ok := c.credByName[key]; ok && c.creds[old].state == credIssued {
		c.creds[old].state, c.creds[old].doneAt = credRevoked, now.Unix()
		c.markCred(old)
		out.event(0, "credential-revoked", "the unused enrolment credential of %s %q is replaced by a new one", kind, name)
	}
	h := credHash(secret)
	c.credSeq++
	c.creds[h] = &admissionCred{kind: kind, name: name, state: credIssued, issuedAt: now.Unix(), seq: c.credSeq}
	c.credByName[key] = h
	c.markCred(h)
	out.event(0, "credential-issued", "enrolment credential issued for %s %q", kind, name)
	return secret, out, nil
}

// credentialTarget checks that a credential may be issued for name.
func (c *CA) credentialTarget(kind CredentialKind, name string) error {
	what := "identity"
	if kind == CredentialLAG {
		what = "LAG id"
	}
	if err := checkID(what, name); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	switch kind {
	case CredentialVehicle:
		if i, ok := c.byReal[name]; ok {
			if c.bvs[i].Revoked {
				return fmt.Errorf("%w: vehicle %q is revoked; a revoked identity cannot enrol again", ErrRevoked, name)
			}
			return fmt.Errorf("%w: vehicle %q is enrolled already and refills with its own identity key, without a credential (to exclude it: gridveil ca revoke %s)", ErrNotPermitted, name, name)
		}
	case CredentialLAG:
		if l := c.lags[name]; l != nil {
			if l.revoked {
				return fmt.Errorf("%w: LAG %q is revoked", ErrRevoked, name)
			}
			return fmt.Errorf("%w: LAG %q is certified already and renews with its own keys, without a credential", ErrNotPermitted, name)
		}
	default:
		return fmt.Errorf("%w: credential kind %d", ErrMalformed, kind)
	}
	return nil
}

// RevokeCredential revokes the credential issued for a name, so that it
// can no longer enrol anyone. Only an unused credential can be revoked:
// once used, its identity is enrolled, and excluding it is a revocation of
// the vehicle (RevokeBV) or the LAG (RevokeLAG).
func (c *CA) RevokeCredential(now time.Time, kind CredentialKind, name string) (Output, error) {
	var out Output
	h, ok := c.credByName[credName{kind, name}]
	if !ok {
		return out, fmt.Errorf("%w: no enrolment credential was issued for %s %q", ErrUnknown, kind, name)
	}
	cr := c.creds[h]
	switch cr.state {
	case credRevoked:
		return out, nil
	case credUsed:
		return out, fmt.Errorf("%w: the enrolment credential of %s %q was used at %s: the %s is enrolled; revoke it instead (gridveil ca revoke)",
			ErrNotPermitted, kind, name, time.Unix(cr.doneAt, 0).UTC().Format(time.RFC3339), kind)
	}
	cr.state, cr.doneAt = credRevoked, now.Unix()
	c.markCred(h)
	out.event(0, "credential-revoked", "enrolment credential of %s %q revoked", kind, name)
	return out, nil
}

// admission checks the secret a new identity enrols with and returns the
// credential to spend once the enrolment succeeds (nil when the shared
// token admitted it, in a migration). Every refusal names its reason.
func (c *CA) admission(kind CredentialKind, name string, secret [32]byte, out *Output) (*[32]byte, error) {
	if secret == ([32]byte{}) {
		return nil, fmt.Errorf("%w: %s %q presented none (the operator issues one: gridveil ca issue %s %s)", ErrNoAdmission, kind, name, kind, name)
	}
	h := credHash(secret)
	cr := c.creds[h]
	if cr == nil {
		if subtle.ConstantTimeCompare(secret[:], c.keys.EnrolToken[:]) == 1 {
			if !c.cfg.SharedToken {
				return nil, fmt.Errorf("%w: %s %q enrolled with it", ErrSharedToken, kind, name)
			}
			out.event(0, "shared-token", "%s %q admitted with the shared enrolment token (CAConfig.SharedToken: a migration; issue per-identity credentials)", kind, name)
			return nil, nil
		}
		return nil, fmt.Errorf("%w: %s %q presented a credential the CA never issued", ErrNoAdmission, kind, name)
	}
	switch {
	case cr.kind != kind:
		return nil, fmt.Errorf("%w: %s %q presented a %s's credential", ErrCredentialOther, kind, name, cr.kind)
	case cr.state == credRevoked:
		return nil, fmt.Errorf("%w: %s %q presented the credential of %s %q, revoked at %s", ErrCredentialRevoked, kind, name, cr.kind, cr.name,
			time.Unix(cr.doneAt, 0).UTC().Format(time.RFC3339))
	case cr.state == credUsed:
		return nil, fmt.Errorf("%w: %s %q presented the credential of %s %q, used at %s", ErrCredentialUsed, kind, name, cr.kind, cr.name,
			time.Unix(cr.doneAt, 0).UTC().Format(time.RFC3339))
	case cr.name != name:
		return nil, fmt.Errorf("%w: %s %q presented the credential issued for %q", ErrCredentialOther, kind, name, cr.name)
	}
	return &h, nil
}

// spendCredential marks a credential used by the enrolment it admitted.
func (c *CA) spendCredential(now time.Time, h *[32]byte) {
	if h == nil {
		return
	}
	cr := c.creds[*h]
	cr.state, cr.doneAt = credUsed, now.Unix()
	c.markCred(*h)
}

// usedCredentialOf reports whether secret is the spent credential of the
// vehicle named name: an enrolment under a bound name with other keys is
// then refused as a reuse of the credential, not merely as other keys.
func (c *CA) usedCredentialOf(kind CredentialKind, name string, secret [32]byte) bool {
	if secret == ([32]byte{}) {
		return false
	}
	cr := c.creds[credHash(secret)]
	return cr != nil && cr.kind == kind && cr.name == name && cr.state == credUsed
}

// CredentialView is what the CA holds of one enrolment credential.
type CredentialView struct {
	Kind     CredentialKind
	Name     string
	State    string // issued, used or revoked
	IssuedAt time.Time
}

// Credential returns the latest enrolment credential issued for a name.
func (c *CA) Credential(kind CredentialKind, name string) (CredentialView, bool) {
	h, ok := c.credByName[credName{kind, name}]
	if !ok {
		return CredentialView{}, false
	}
	cr := c.creds[h]
	return CredentialView{Kind: cr.kind, Name: cr.name, State: [...]string{"issued", "used", "revoked"}[cr.state],
		IssuedAt: time.Unix(cr.issuedAt, 0)}, true
}

func (c *CA) credRecord(h [32]byte) Record {
	cr := c.creds[h]
	if cr == nil {
		return Record{Table: TableCredentials, Key: append([]byte(nil), h[:]...)}
	}
	v := wire.NewBuilder(nil).U8(recordVersion).U8(uint8(cr.kind)).String(cr.name).U8(uint8(cr.state)).
		I64(cr.issuedAt).I64(cr.doneAt).U64(cr.seq).Out()
	return Record{Table: TableCredentials, Key: append([]byte(nil), h[:]...), Value: v}
}

func (c *CA) credRecords(d map[[32]byte]bool) []Record {
	hs := make([][32]byte, 0, len(d))
	for h := range d {
		hs = append(hs, h)
	}
	sort.Slice(hs, func(i, j int) bool { return string(hs[i][:]) < string(hs[j][:]) })
	out := make([]Record, 0, len(hs))
	for _, h := range hs {
		out = append(out, c.credRecord(h))
	}
	return out
}

// restoreCred reads one TableCredentials record.
func (c *CA) restoreCred(k, v []byte) error {
	if len(k) != 32 {
		return fmt.Errorf("key of %d bytes", len(k))
	}
	rd := wire.NewReader(v)
	if rd.U8() != recordVersion {
		return fmt.Errorf("record version")
	}
	cr := &admissionCred{kind: CredentialKind(rd.U8()), name: rd.String(MaxID), state: credState(rd.U8()), issuedAt: rd.I64(), doneAt: rd.I64(), seq: rd.U64()}
	if err := rd.Finish(); err != nil {
		return err
	}
	if cr.kind != CredentialVehicle && cr.kind != CredentialLAG || cr.state > credRevoked {
		return fmt.Errorf("kind %d, state %d", cr.kind, cr.state)
	}
	h := [32]byte(k)
	c.creds[h] = cr
	// The name's current credential is its latest issued.
	key := credName{cr.kind, cr.name}
	if old, ok := c.credByName[key]; !ok || c.creds[old].seq < cr.seq {
		c.credByName[key] = h
	}
	c.credSeq = max(c.credSeq, cr.seq)
	return nil
}
