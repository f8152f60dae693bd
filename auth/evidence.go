package auth

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"filippo.io/edwards25519"

	"github.com/gridveil/gridveil/auth/lsag"
	"github.com/gridveil/gridveil/auth/pseudonym"
	"github.com/gridveil/gridveil/auth/wire"
)

// Evidence is what a LAG keeps of a session it admitted, so that the CA
// can trace it later (billing, disputes) even after the CA forgot its
// sessions (a restart): the credential and the vehicle's signature over the
// session's channel binding, the LAG's challenge, the LAG's identifier,
// scheme, role and linking epoch, exactly what the LAG forwarded to the CA.
// The signature makes a record unforgeable: no LAG can attribute a session
// to a credential that did not authenticate it there.
//
// A resumed session has no credential of its own: its record names the
// session its ticket descends from (Origin), whose record traces it.
//
// Evidence holds nothing the LAG did not see: the real identity is only
// inside the pseudonym's tracing tag (encrypted to the CA) or behind the
// LSAG link tag (which only the CA's scope secret resolves).
type Evidence struct {
	LAGID     string
	Time      int64    // when the LAG admitted the session, Unix seconds
	Binding   [32]byte // the session's channel binding
	Resumed   bool     // admitted with a ticket: see Origin
	Origin    [32]byte // resumed: the binding of the full authentication behind the ticket
	Challenge [32]byte
	Scheme    Scheme
	Role      Role
	Epoch     int64
	Cred      []byte // pseudonym certificate or ring reference; empty when resumed
	Sig       []byte // empty when resumed
}

const domEvidence = "gridveil/evidence/v1\x00"

// Marshal encodes the record (canonical: ParseEvidence gives it back).
func (e *Evidence) Marshal() []byte {
	return wire.NewBuilder([]byte(domEvidence)).String(e.LAGID).I64(e.Time).Fixed(e.Binding[:]).U8(b2u(e.Resumed)).
		Fixed(e.Origin[:]).Fixed(e.Challenge[:]).U8(uint8(e.Scheme)).U8(uint8(e.Role)).I64(e.Epoch).
		Bytes(e.Cred).Bytes(e.Sig).Out()
}

// ParseEvidence decodes Marshal's output. It checks the encoding, not the
// signature (CA.TraceEvidence does).
func ParseEvidence(b []byte) (*Evidence, error) {
	if len(b) < len(domEvidence) || string(b[:len(domEvidence)]) != domEvidence {
		return nil, fmt.Errorf("%w: not a session evidence record", ErrMalformed)
	}
	r := wire.NewReader(b[len(domEvidence):])
	e := &Evidence{LAGID: r.String(MaxID), Time: r.I64()}
	r.FixedInto(e.Binding[:])
	e.Resumed = u2b(r)
	r.FixedInto(e.Origin[:])
	r.FixedInto(e.Challenge[:])
	e.Scheme, e.Role, e.Epoch = Scheme(r.U8()), Role(r.U8()), r.I64()
	e.Cred = r.Bytes(maxCred)
	e.Sig = r.Bytes(maxSigLen)
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: evidence: %w", ErrMalformed, err)
	}
	switch {
	case e.LAGID == "":
		return nil, fmt.Errorf("%w: evidence without a LAG", ErrMalformed)
	case e.Resumed && (len(e.Cred) != 0 || len(e.Sig) != 0 || e.Origin == [32]byte{}):
		return nil, fmt.Errorf("%w: evidence of a resumed session carries an origin and no credential", ErrMalformed)
	case !e.Resumed && (len(e.Cred) == 0 || len(e.Sig) == 0 || e.Origin != [32]byte{}):
		return nil, fmt.Errorf("%w: evidence of a full authentication carries a credential and no origin", ErrMalformed)
	}
	return e, nil
}

// evidence is the record of a session the LAG just admitted: its forwarded
// authentication, or for a resumption the session it resumes.
func (l *LAG) evidence(now time.Time, s *lagSession) *Evidence {
	e := &Evidence{LAGID: l.cfg.Cert.LAGID, Time: now.Unix(), Binding: s.ch.binding, Role: s.role}
	switch {
	case s.resumed:
		e.Resumed, e.Origin = true, s.origin
		if s.cred != nil {
			e.Scheme = s.cred.scheme
		}
	case s.entry != nil:
		e.Challenge, e.Scheme, e.Epoch, e.Cred, e.Sig = s.entry.Challenge, s.entry.Scheme, s.entry.Epoch, s.entry.Cred, s.entry.Sig
	default:
		return nil
	}
	return e
}

// recordEvidence reports a session the LAG admitted as an "evidence"
// event carrying its Evidence, for the shell to store (package authnet
// appends it to the LAG's evidence file).
func (l *LAG) recordEvidence(now time.Time, out *Output, s *lagSession) {
	if e := l.evidence(now, s); e != nil {
		out.Events = append(out.Events, Event{Conn: s.id, Kind: "evidence", Evidence: e,
			Detail: fmt.Sprintf("session %d: evidence %x kept for the CA", s.id, e.Binding[:6])})
	}
}

// TraceEvidence returns the real identity behind a session from a LAG's
// evidence record. It first checks that the record is a real session at
// that LAG: the credential is the CA's (the certificate's signature, or a
// ring of the CA's group list, revoked members included) and the vehicle's
// signature covers the binding, the challenge and the LAG; the
// certificate's window is not checked, since evidence outlives it. Then
// it opens the pseudonym's tracing tag, or finds the ring member whose key
// times the scope secret is the link tag. A resumed session's record names
// its origin, whose record the caller traces instead.
func (c *CA) TraceEvidence(e *Evidence) (string, error) {
	if e.Resumed {
		return "", fmt.Errorf("%w: session %x was resumed from session %x: trace that session's record", ErrUnknown, e.Binding[:4], e.Origin[:4])
	}
	if !e.Role.valid() {
		return "", fmt.Errorf("%w: role %d", ErrMalformed, e.Role)
	}
	stmt := authStatement(e.Binding, e.Challenge, e.LAGID, e.Scheme, e.Role, e.Epoch, e.Cred)
	switch e.Scheme {
	case SchemePseudonym:
		cert, err := pseudonym.ParseCert(e.Cred)
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		if err := cert.CheckSignature(c.pub.sign()); err != nil {
			return "", fmt.Errorf("%w: %w", ErrNoCredential, err)
		}
		if len(e.Sig) != ed25519.SignatureSize || !ed25519.Verify(cert.Key[:], stmt, e.Sig) {
			return "", fmt.Errorf("%w: the vehicle's signature on the session", ErrBadSignature)
		}
		return pseudonym.OpenTraceTag(c.trace, cert)
	case SchemeLSAG:
		rr, err := parseRingRef(e.Cred)
		if err != nil {
			return "", err
		}
		g := c.groups[rr.Group]
		if g == nil {
			return "", fmt.Errorf("%w: group %q", ErrUnknown, rr.Group)
		}
		pts := make([]*edwards25519.Point, len(rr.Members))
		for i, m := range rr.Members {
			if int64(m) >= int64(len(g.keys)) {
				return "", fmt.Errorf("%w: ring member %d of a group of %d", ErrUnknown, m, len(g.keys))
			}
			if pts[i], err = lsag.ParsePoint(g.keys[m][:]); err != nil {
				return "", fmt.Errorf("%w: group key %d: %w", ErrMalformed, m, err)
			}
		}
		ring, err := lsag.NewRingFromPoints(pts)
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		sig, err := lsag.ParseSignature(e.Sig, ring.Len())
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		t, base := c.scopeSecret(e.LAGID, e.Epoch)
		if err := lsag.Verify(stmt, ring, base, sig); err != nil {
			return "", fmt.Errorf("%w: the vehicle's signature on the session: %w", ErrBadSignature, err)
		}
		k := lsag.Trace(sig.Tag, ring, t)
		owner := c.groupOwner[rr.Group]
		if k < 0 || int(rr.Members[k]) >= len(owner) {
			return "", fmt.Errorf("%w: link tag traces to no ring member", ErrUnknown)
		}
		return c.bvs[owner[rr.Members[k]]].RealID, nil
	}
	return "", fmt.Errorf("%w: scheme %d", ErrMalformed, e.Scheme)
}
