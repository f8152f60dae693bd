package auth

import (
	"errors"
	"fmt"
	"time"
)

// Scheme is an anonymous credential scheme.
type Scheme uint8

// The credential schemes. Zero is no scheme: it is never accepted.
const (
	// SchemePseudonym: a single-use CA-signed pseudonym certificate
	// (package pseudonym); batch-verifiable; anonymity set the whole group.
	SchemePseudonym Scheme = 1
	// SchemeLSAG: a linkable ring signature over members of the group
	// (package lsag); anonymity set the ring; link tag per LAG and epoch.
	SchemeLSAG Scheme = 2
)

func (s Scheme) String() string {
	switch s {
	case SchemePseudonym:
		return "pseudonym"
	case SchemeLSAG:
		return "lsag"
	}
	return fmt.Sprintf("scheme(%d)", uint8(s))
}

// ParseScheme reads a scheme's name.
func ParseScheme(name string) (Scheme, error) {
	switch name {
	case "pseudonym":
		return SchemePseudonym, nil
	case "lsag":
		return SchemeLSAG, nil
	}
	return 0, fmt.Errorf("credential scheme %q: use pseudonym or lsag", name)
}

func (s Scheme) valid() bool { return s == SchemePseudonym || s == SchemeLSAG }

// Role is the part a vehicle plays at a station (seed 002, role awareness).
type Role uint8

// The roles.
const (
	RoleLoad    Role = 1 // load-BV: an energy consumer that charges
	RoleStorage Role = 2 // storage-BV: stored energy the CA may ask for
	RoleSupply  Role = 3 // S3P-BV: feeds power to the grid or to load-BVs
)

func (r Role) String() string {
	switch r {
	case RoleLoad:
		return "load"
	case RoleStorage:
		return "storage"
	case RoleSupply:
		return "supply"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// ParseRole reads a role's name.
func ParseRole(name string) (Role, error) {
	switch name {
	case "load":
		return RoleLoad, nil
	case "storage":
		return RoleStorage, nil
	case "supply", "s3p":
		return RoleSupply, nil
	}
	return 0, fmt.Errorf("role %q: use load, storage or supply", name)
}

func (r Role) valid() bool { return r >= RoleLoad && r <= RoleSupply }

// discharges reports whether the role answers discharge requests.
func (r Role) discharges() bool { return r == RoleStorage || r == RoleSupply }

// Service is the set of services a permit grants.
type Service uint16

// Services. A vehicle in a visiting network gets ServiceBasic; at home it
// gets ServiceFull (seed 002, vehicle mobility).
const (
	ServiceCharge    Service = 1 << 0
	ServiceDischarge Service = 1 << 1
	ServiceInquiry   Service = 1 << 2 // data inquiries at the station
	ServiceResume    Service = 1 << 3 // resumption tickets

	ServiceBasic = ServiceCharge | ServiceDischarge
	ServiceFull  = ServiceBasic | ServiceInquiry | ServiceResume
)

// Has reports whether s includes every service of t.
func (s Service) Has(t Service) bool { return s&t == t }

func (s Service) String() string {
	switch s {
	case ServiceFull:
		return "full"
	case ServiceBasic:
		return "basic"
	}
	return fmt.Sprintf("service(%#x)", uint16(s))
}

// Mode is a discharge request's destination (seed 002, flexible
// discharging modes).
type Mode uint8

// Discharging modes.
const (
	// Centralized: supply-BVs feed the grid.
	Centralized Mode = 1
	// Distributed: supply-BVs feed the station's pool, from which the LAG
	// serves neighbouring load-BVs.
	Distributed Mode = 2
)

func (m Mode) String() string {
	switch m {
	case Centralized:
		return "centralized"
	case Distributed:
		return "distributed"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// ProtocolVersion is the only version of the BV-LAG protocol this package
// speaks; a hello with another version is a downgrade.
const ProtocolVersion = 1

// Limits on identifiers.
const (
	MaxID        = 64 // real identities, LAG identifiers, groups
	MaxRingSize  = 256
	maxList      = 1 << 20
	EpochSeconds = 3600 // length of an LSAG linking scope at one LAG
)

// Epoch returns the LSAG linking epoch of t.
func Epoch(t time.Time) int64 { return floorDiv(t.Unix(), EpochSeconds) }

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func checkID(what, s string) error {
	if s == "" || len(s) > MaxID {
		return fmt.Errorf("%s %q: 1..%d bytes", what, s, MaxID)
	}
	return nil
}

// Errors. Every protocol rejection wraps exactly one of them, so callers
// and tests can tell attacks apart with errors.Is.
var (
	ErrMalformed    = errors.New("auth: malformed message")
	ErrBadSignature = errors.New("auth: bad signature")
	ErrBadMAC       = errors.New("auth: bad authentication operator")
	ErrUntrusted    = errors.New("auth: not certified by the CA")
	ErrNoCredential = errors.New("auth: no valid credential")
	ErrExpired      = errors.New("auth: expired")
	ErrRevoked      = errors.New("auth: revoked")
	ErrReplay       = errors.New("auth: replayed")
	ErrCloned       = errors.New("auth: credential in use elsewhere")
	ErrDowngrade    = errors.New("auth: downgrade refused")
	ErrChannel      = errors.New("auth: secure channel failed")
	ErrState        = errors.New("auth: message out of order")
	ErrNotPermitted = errors.New("auth: not permitted")
	ErrUnknown      = errors.New("auth: unknown session, member or party")
	ErrUnavailable  = errors.New("auth: central authority unavailable")
	// ErrStaleRing refuses an LSAG ring that holds a member revoked since
	// the vehicle's copy of its group list: the verifier cannot tell
	// whether the signer is that member, and an innocent vehicle's list is
	// merely outdated, so the answer is "refresh the list and retry", not
	// "revoked" (a revoked vehicle learns that when it refreshes).
	ErrStaleRing = errors.New("auth: the ring holds a revoked member (the group list is outdated: refresh it and retry)")
	// Refusals of an enrolment by per-identity admission (admission.go).
	ErrNoAdmission       = errors.New("auth: no enrolment credential for this identity (the operator issues one: gridveil ca issue)")
	ErrSharedToken       = errors.New("auth: the shared enrolment token is no longer accepted (the operator issues a credential per vehicle and LAG with gridveil ca issue; serve --role ca --shared-token accepts it during a migration)")
	ErrCredentialUsed    = errors.New("auth: the enrolment credential was used already (it enrols one identity once)")
	ErrCredentialOther   = errors.New("auth: the enrolment credential was issued for another identity or kind of party")
	ErrCredentialRevoked = errors.New("auth: the enrolment credential was revoked (ask the operator for a new one)")
)

// rejectCodes maps the errors a party may report to its peer to one byte.
var rejectCodes = []error{
	nil, ErrMalformed, ErrBadSignature, ErrBadMAC, ErrUntrusted, ErrNoCredential,
	ErrExpired, ErrRevoked, ErrReplay, ErrCloned, ErrDowngrade, ErrChannel, ErrState,
	ErrNotPermitted, ErrUnknown, ErrUnavailable, ErrStaleRing,
	ErrNoAdmission, ErrSharedToken, ErrCredentialUsed, ErrCredentialOther, ErrCredentialRevoked,
}

func codeOf(err error) uint8 {
	for i, e := range rejectCodes[1:] {
		if errors.Is(err, e) {
			return uint8(i + 1)
		}
	}
	return uint8(1) // anything else is reported as malformed
}

func errOf(code uint8) error {
	if code == 0 || int(code) >= len(rejectCodes) {
		return ErrMalformed
	}
	return rejectCodes[code]
}

// RejectFrame is the clear frame that refuses a connection before any
// channel exists, for shells that turn a peer away (err is one of the
// package's errors).
func RejectFrame(err error) []byte { return []byte{frameReject, codeOf(err)} }

// RejectedError is a rejection reported by the peer (the LAG or the CA).
type RejectedError struct {
	By     string // "lag" or "ca"
	Reason error  // one of the package's errors
}

func (e *RejectedError) Error() string { return fmt.Sprintf("rejected by the %s: %v", e.By, e.Reason) }

// Unwrap returns the reason, so errors.Is(err, ErrRevoked) works on a
// rejection.
func (e *RejectedError) Unwrap() error { return e.Reason }
