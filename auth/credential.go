package auth

import (
	"crypto/ed25519"
	"fmt"
	"slices"
	"time"

	"filippo.io/edwards25519"

	"github.com/gridveil/gridveil/auth/lsag"
	"github.com/gridveil/gridveil/auth/pseudonym"
)

// groupKeys is one group's LSAG keys as a verifier holds them, with the
// points decoded and validated on first use.
type groupKeys struct {
	keys    [][32]byte
	points  []*edwards25519.Point
	revoked map[uint32]bool
}

func newGroupKeys(keys [][32]byte, revoked []uint32) *groupKeys {
	g := &groupKeys{revoked: make(map[uint32]bool, len(revoked))}
	for _, k := range keys {
		g.add(k)
	}
	for _, i := range revoked {
		g.revoked[i] = true
	}
	return g
}

func (g *groupKeys) add(k [32]byte) {
	g.keys = append(g.keys, k)
	g.points = append(g.points, nil)
}

// revokedList lists the revoked members in ascending order, in time of
// the revoked, not of the list (it is in every group head the CA signs).
func (g *groupKeys) revokedList() []uint32 {
	out := make([]uint32, 0, len(g.revoked))
	for i, r := range g.revoked {
		if r && int64(i) < int64(len(g.keys)) {
			out = append(out, i)
		}
	}
	slices.Sort(out)
	return out
}

// ring resolves a ring reference. A member index beyond the list is
// ErrUnknown; a revoked member is ErrStaleRing.
func (g *groupKeys) ring(members []uint32) (*lsag.Ring, error) {
	pts := make([]*edwards25519.Point, len(members))
	for i, m := range members {
		if int64(m) >= int64(len(g.keys)) {
			return nil, fmt.Errorf("%w: ring member %d of a group of %d", ErrUnknown, m, len(g.keys))
		}
		if g.revoked[m] {
			return nil, fmt.Errorf("%w: ring member %d", ErrStaleRing, m)
		}
		if g.points[m] == nil {
			p, err := lsag.ParsePoint(g.keys[m][:])
			if err != nil {
				return nil, fmt.Errorf("%w: group key %d: %w", ErrMalformed, m, err)
			}
			g.points[m] = p
		}
		pts[i] = g.points[m]
	}
	r, err := lsag.NewRingFromPoints(pts)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return r, nil
}

// credMaterial is what a verifier keeps of a session's credential to check
// the vehicle's later signed messages, and to refer to it.
type credMaterial struct {
	scheme Scheme
	group  string
	ref    [32]byte // pseudonym serial (zero-padded) or LSAG link tag
	// pseudonym
	cert *pseudonym.Cert
	// LSAG
	rr    *ringRef
	ring  *lsag.Ring
	base  *edwards25519.Point
	epoch int64
}

// check is one authentication to verify: the statement, the signature and
// the credential material it would establish.
type check struct {
	cred *credMaterial
	stmt []byte
	sig  []byte
	lsig *lsag.Signature
}

// verifierEnv is what a verifier (LAG or CA) resolves credentials against.
type verifierEnv struct {
	ca       CAPublic
	groups   map[string]*groupKeys
	base     func(lagID string, epoch int64) (*edwards25519.Point, error)
	revoked  func(serial [16]byte) bool
	lagID    string
	now      time.Time
	maxEpoch int64 // tolerance of the linking epoch, in epochs either side
}

// prepare decodes and checks everything about a credential but its
// signatures, which the caller verifies in a batch (verifyChecks).
func (env *verifierEnv) prepare(binding, challenge [32]byte, s Scheme, role Role, epoch int64, cred, sig []byte) (*check, error) {
	c, err := decodeCheck(env.lagID, env.now, env.maxEpoch, binding, challenge, s, role, epoch, cred, sig)
	if err != nil {
		return nil, err
	}
	return c, env.resolve(c, sig)
}

// decodeCheck is the part of prepare that needs nothing but the request
// and the time: the statement, the credential's decoding, sizes, the
// pseudonym's validity window and the linking epoch. It reads no verifier
// state, so a LAG runs it outside its lock (Step.Run); resolve does the
// rest, in the same order of checks as before the split.
func decodeCheck(lagID string, now time.Time, maxEpoch int64, binding, challenge [32]byte, s Scheme, role Role, epoch int64, cred, sig []byte) (*check, error) {
	if !role.valid() {
		return nil, fmt.Errorf("%w: role %d", ErrMalformed, role)
	}
	c := &check{stmt: authStatement(binding, challenge, lagID, s, role, epoch, cred), sig: sig}
	switch s {
	case SchemePseudonym:
		if epoch != 0 {
			return nil, fmt.Errorf("%w: epoch with a pseudonym", ErrMalformed)
		}
		cert, err := pseudonym.ParseCert(cred)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		if len(sig) != ed25519.SignatureSize {
			return nil, fmt.Errorf("%w: signature of %d bytes", ErrMalformed, len(sig))
		}
		if err := cert.CheckValidity(now); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrExpired, err)
		}
		c.cred = &credMaterial{scheme: s, group: cert.Group, cert: cert}
		copy(c.cred.ref[:], cert.Serial[:])
	case SchemeLSAG:
		rr, err := parseRingRef(cred)
		if err != nil {
			return nil, err
		}
		cur := Epoch(now)
		if epoch < cur-maxEpoch || epoch > cur+maxEpoch {
			return nil, fmt.Errorf("%w: linking epoch %d, now %d", ErrExpired, epoch, cur)
		}
		c.cred = &credMaterial{scheme: s, group: rr.Group, rr: rr, epoch: epoch}
	default:
		return nil, fmt.Errorf("%w: scheme %d", ErrDowngrade, s)
	}
	return c, nil
}

// resolve completes a decoded check against the verifier's state: the
// revocation list for a pseudonym; the group's keys, the signature's
// decoding for that ring and the linking base for LSAG.
func (env *verifierEnv) resolve(c *check, sig []byte) error {
	switch c.cred.scheme {
	case SchemePseudonym:
		if env.revoked(c.cred.cert.Serial) {
			return fmt.Errorf("%w: pseudonym %x", ErrRevoked, c.cred.cert.Serial[:4])
		}
	case SchemeLSAG:
		g := env.groups[c.cred.rr.Group]
		if g == nil {
			return fmt.Errorf("%w: group %q", ErrUnknown, c.cred.rr.Group)
		}
		ring, err := g.ring(c.cred.rr.Members)
		if err != nil {
			return err
		}
		lsig, err := lsag.ParseSignature(sig, ring.Len())
		if err != nil {
			return fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		base, err := env.base(env.lagID, c.cred.epoch)
		if err != nil {
			return err
		}
		c.lsig = lsig
		c.cred.ring, c.cred.base, c.cred.ref = ring, base, lsig.Tag
	}
	return nil
}

// verifyChecks verifies the signatures of prepared checks: pseudonym
// credentials (the CA's certificate signature and the session signature)
// in one batch, LSAG signatures one by one. It returns nil or an error for
// each check.
func verifyChecks(ca CAPublic, checks []*check) []error {
	errs := make([]error, len(checks))
	var entries []pseudonym.Entry
	var owner []int
	for i, c := range checks {
		switch c.cred.scheme {
		case SchemePseudonym:
			entries = append(entries,
				pseudonym.Entry{PublicKey: ca.SignKey[:], Message: c.cred.cert.SignedMessage(), Signature: c.cred.cert.Sig[:]},
				pseudonym.Entry{PublicKey: c.cred.cert.Key[:], Message: c.stmt, Signature: c.sig})
			owner = append(owner, i, i)
		case SchemeLSAG:
			if err := lsag.Verify(c.stmt, c.cred.ring, c.cred.base, c.lsig); err != nil {
				errs[i] = fmt.Errorf("%w: %w", ErrBadSignature, err)
			}
		}
	}
	for k, ok := range pseudonym.VerifyEach(entries) {
		if !ok && errs[owner[k]] == nil {
			if k%2 == 0 {
				errs[owner[k]] = fmt.Errorf("%w: pseudonym certificate", ErrNoCredential)
			} else {
				errs[owner[k]] = fmt.Errorf("%w: session signature", ErrBadSignature)
			}
		}
	}
	return errs
}

// verifyAnon checks a vehicle's signature on a later message of a session
// under the session's credential.
func (m *credMaterial) verifyAnon(stmt, sig []byte) error {
	switch m.scheme {
	case SchemePseudonym:
		if !ed25519.Verify(m.cert.Key[:], stmt, sig) {
			return fmt.Errorf("%w: pseudonym signature", ErrBadSignature)
		}
	case SchemeLSAG:
		s, err := lsag.ParseSignature(sig, m.ring.Len())
		if err != nil {
			return fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		if s.Tag != m.ref {
			return fmt.Errorf("%w: link tag differs from the session's", ErrBadSignature)
		}
		if err := lsag.Verify(stmt, m.ring, m.base, s); err != nil {
			return fmt.Errorf("%w: %w", ErrBadSignature, err)
		}
	default:
		return fmt.Errorf("%w: scheme %d", ErrDowngrade, m.scheme)
	}
	return nil
}
