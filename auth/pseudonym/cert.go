package pseudonym

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"filippo.io/edwards25519"

	"github.com/gridveil/gridveil/auth/wire"
)

// Sizes of a certificate's fields, in bytes.
const (
	SerialSize   = 16
	KeySize      = ed25519.PublicKeySize
	SigSize      = ed25519.SignatureSize
	MaxGroup     = 64 // longest group attribute
	MaxIdentity  = 64 // longest real identity inside a tracing tag
	tracePlain   = 1 + MaxIdentity
	TraceTagSize = 32 + tracePlain + 16 // HPKE enc, padded identity, AEAD tag
	// MaxCertSize bounds an encoded certificate.
	MaxCertSize = SerialSize + 4 + MaxGroup + 8 + 8 + KeySize + TraceTagSize + SigSize
)

// Errors. Every rejection wraps one of them.
var (
	ErrMalformed    = errors.New("pseudonym: malformed certificate")
	ErrBadSignature = errors.New("pseudonym: bad signature")
	ErrExpired      = errors.New("pseudonym: certificate expired")
	ErrNotYetValid  = errors.New("pseudonym: certificate not yet valid")
	ErrBadKey       = errors.New("pseudonym: unusable public key")
	ErrTraceTag     = errors.New("pseudonym: tracing tag does not open")
)

const certDomain = "gridveil/pseudonym-cert/v1\x00"

var (
	traceKDF  = hpke.HKDFSHA256()
	traceAEAD = hpke.ChaCha20Poly1305()
)

// Cert is a CA-signed pseudonym certificate.
type Cert struct {
	Serial    [SerialSize]byte
	Group     string
	NotBefore int64 // Unix seconds, inclusive
	NotAfter  int64 // Unix seconds, exclusive
	Key       [KeySize]byte
	TraceTag  [TraceTagSize]byte
	Sig       [SigSize]byte
}

func (c *Cert) appendBody(dst []byte) []byte {
	return wire.NewBuilder(dst).Fixed(c.Serial[:]).String(c.Group).I64(c.NotBefore).I64(c.NotAfter).
		Fixed(c.Key[:]).Fixed(c.TraceTag[:]).Out()
}

// SignedMessage is what the CA signs: a domain string and the body.
func (c *Cert) SignedMessage() []byte {
	return c.appendBody([]byte(certDomain))
}

// AppendTo appends the certificate's encoding to dst.
func (c *Cert) AppendTo(dst []byte) []byte {
	return append(c.appendBody(dst), c.Sig[:]...)
}

// Marshal encodes the certificate.
func (c *Cert) Marshal() []byte { return c.AppendTo(nil) }

// ParseCert decodes a certificate. It checks the encoding and the group's
// length, not the signature or the validity.
func ParseCert(b []byte) (*Cert, error) {
	r := wire.NewReader(b)
	c := new(Cert)
	r.FixedInto(c.Serial[:])
	c.Group = r.String(MaxGroup)
	c.NotBefore = r.I64()
	c.NotAfter = r.I64()
	r.FixedInto(c.Key[:])
	r.FixedInto(c.TraceTag[:])
	r.FixedInto(c.Sig[:])
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if c.Group == "" || c.NotAfter <= c.NotBefore {
		return nil, fmt.Errorf("%w: empty group or empty validity window", ErrMalformed)
	}
	return c, nil
}

// CheckKey accepts a canonical encoding of an Ed25519 point that is not of
// small order. The CA applies it before certifying a pseudonym key.
func CheckKey(pub []byte) error {
	if len(pub) != KeySize {
		return fmt.Errorf("%w: %d bytes", ErrBadKey, len(pub))
	}
	p, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return fmt.Errorf("%w: not a point", ErrBadKey)
	}
	if !bytes.Equal(p.Bytes(), pub) {
		return fmt.Errorf("%w: non-canonical encoding", ErrBadKey)
	}
	if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return fmt.Errorf("%w: small order", ErrBadKey)
	}
	return nil
}

// Issue certifies key for the holder realID in group, valid in
// [notBefore, notAfter), with a fresh random serial and tracing tag.
func Issue(ca ed25519.PrivateKey, trace hpke.PublicKey, realID, group string, key []byte, notBefore, notAfter time.Time) (*Cert, error) {
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	if group == "" || len(group) > MaxGroup || len(realID) > MaxIdentity || realID == "" {
		return nil, fmt.Errorf("pseudonym: group (1..%d bytes) or identity (1..%d bytes) out of range", MaxGroup, MaxIdentity)
	}
	if !notAfter.After(notBefore) {
		return nil, errors.New("pseudonym: empty validity window")
	}
	c := &Cert{Group: group, NotBefore: notBefore.Unix(), NotAfter: notAfter.Unix()}
	if _, err := rand.Read(c.Serial[:]); err != nil {
		return nil, fmt.Errorf("pseudonym: serial: %w", err)
	}
	copy(c.Key[:], key)
	plain := make([]byte, tracePlain)
	plain[0] = byte(len(realID))
	copy(plain[1:], realID)
	tag, err := hpke.Seal(trace, traceKDF, traceAEAD, traceInfo(c.Serial), plain)
	if err != nil {
		return nil, fmt.Errorf("pseudonym: tracing tag: %w", err)
	}
	if len(tag) != TraceTagSize {
		return nil, fmt.Errorf("pseudonym: tracing tag of %d bytes, want %d", len(tag), TraceTagSize)
	}
	copy(c.TraceTag[:], tag)
	copy(c.Sig[:], ed25519.Sign(ca, c.SignedMessage()))
	return c, nil
}

func traceInfo(serial [SerialSize]byte) []byte {
	return append([]byte("gridveil/trace/v1\x00"), serial[:]...)
}

// CheckSignature verifies the CA's signature.
func (c *Cert) CheckSignature(ca ed25519.PublicKey) error {
	if !ed25519.Verify(ca, c.SignedMessage(), c.Sig[:]) {
		return fmt.Errorf("%w on certificate %x", ErrBadSignature, c.Serial[:4])
	}
	return nil
}

// CheckValidity checks the window at now.
func (c *Cert) CheckValidity(now time.Time) error {
	t := now.Unix()
	switch {
	case t < c.NotBefore:
		return fmt.Errorf("%w: from %s", ErrNotYetValid, time.Unix(c.NotBefore, 0).UTC().Format(time.RFC3339))
	case t >= c.NotAfter:
		return fmt.Errorf("%w at %s", ErrExpired, time.Unix(c.NotAfter, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

// OpenTraceTag recovers the real identity behind a certificate. Only the
// CA's tracing key opens it.
func OpenTraceTag(trace hpke.PrivateKey, c *Cert) (string, error) {
	plain, err := hpke.Open(trace, traceKDF, traceAEAD, traceInfo(c.Serial), c.TraceTag[:])
	if err != nil || len(plain) != tracePlain || int(plain[0]) > MaxIdentity {
		return "", fmt.Errorf("%w (certificate %x)", ErrTraceTag, c.Serial[:4])
	}
	return string(plain[1 : 1+int(plain[0])]), nil
}
