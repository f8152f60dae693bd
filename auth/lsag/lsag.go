package lsag

import (
	"crypto/rand"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"

	"filippo.io/edwards25519"
)

// Sizes and limits.
const (
	PointSize  = 32
	ScalarSize = 32
	MaxRing    = 1024 // largest ring Verify and ParseSignature accept
)

// Errors. Every rejection wraps one of them.
var (
	ErrMalformed    = errors.New("lsag: malformed signature")
	ErrBadPoint     = errors.New("lsag: not a point of the prime-order subgroup")
	ErrBadSignature = errors.New("lsag: signature does not verify")
	ErrRing         = errors.New("lsag: bad ring")
)

var inv8 = func() *edwards25519.Scalar {
	var b [32]byte
	b[0] = 8
	e, _ := new(edwards25519.Scalar).SetCanonicalBytes(b[:])
	return e.Invert(e)
}()

// ParsePoint decodes a canonical encoding of a point of the prime-order
// subgroup other than the identity.
func ParsePoint(b []byte) (*edwards25519.Point, error) {
	if len(b) != PointSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadPoint, len(b))
	}
	p, err := new(edwards25519.Point).SetBytes(b)
	if err != nil {
		return nil, fmt.Errorf("%w: does not decode", ErrBadPoint)
	}
	if [32]byte(p.Bytes()) != [32]byte(b) {
		return nil, fmt.Errorf("%w: non-canonical encoding", ErrBadPoint)
	}
	if p.Equal(edwards25519.NewIdentityPoint()) == 1 {
		return nil, fmt.Errorf("%w: identity", ErrBadPoint)
	}
	// P lies in the subgroup of order l iff [1/8]([8]P) == P.
	q := new(edwards25519.Point).MultByCofactor(p)
	if q.VarTimeMultiScalarMult([]*edwards25519.Scalar{inv8}, []*edwards25519.Point{q}).Equal(p) != 1 {
		return nil, fmt.Errorf("%w: has a small-order component", ErrBadPoint)
	}
	return p, nil
}

func randomScalar() (*edwards25519.Scalar, error) {
	var b [64]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("lsag: randomness: %w", err)
	}
	return new(edwards25519.Scalar).SetUniformBytes(b[:])
}

// PrivateKey is a signer's secret scalar with its public key.
type PrivateKey struct {
	x   *edwards25519.Scalar
	pub [PointSize]byte
}

// GenerateKey draws a key from crypto/rand.
func GenerateKey() (*PrivateKey, error) {
	x, err := randomScalar()
	if err != nil {
		return nil, err
	}
	return keyFrom(x), nil
}

func keyFrom(x *edwards25519.Scalar) *PrivateKey {
	k := &PrivateKey{x: x}
	copy(k.pub[:], new(edwards25519.Point).ScalarBaseMult(x).Bytes())
	return k
}

// NewPrivateKey decodes a key written by Bytes.
func NewPrivateKey(b []byte) (*PrivateKey, error) {
	x, err := new(edwards25519.Scalar).SetCanonicalBytes(b)
	if err != nil || x.Equal(edwards25519.NewScalar()) == 1 {
		return nil, errors.New("lsag: invalid private key")
	}
	return keyFrom(x), nil
}

// Bytes encodes the secret scalar (32 bytes).
func (k *PrivateKey) Bytes() []byte { return k.x.Bytes() }

// Public is the public key x G.
func (k *PrivateKey) Public() [PointSize]byte { return k.pub }

// Tag is the link tag x T this key produces under base T.
func (k *PrivateKey) Tag(base *edwards25519.Point) [PointSize]byte {
	return [PointSize]byte(new(edwards25519.Point).ScalarMult(k.x, base).Bytes())
}

// Ring is a validated list of public keys.
type Ring struct {
	points []*edwards25519.Point
	enc    [][PointSize]byte
}

// NewRing validates keys (1..MaxRing prime-order points, no duplicates).
func NewRing(keys [][PointSize]byte) (*Ring, error) {
	if len(keys) == 0 || len(keys) > MaxRing {
		return nil, fmt.Errorf("%w: %d members (1..%d)", ErrRing, len(keys), MaxRing)
	}
	r := &Ring{points: make([]*edwards25519.Point, len(keys)), enc: keys}
	seen := make(map[[PointSize]byte]bool, len(keys))
	for i, k := range keys {
		if seen[k] {
			return nil, fmt.Errorf("%w: member %d repeated", ErrRing, i)
		}
		seen[k] = true
		p, err := ParsePoint(k[:])
		if err != nil {
			return nil, fmt.Errorf("%w: member %d: %w", ErrRing, i, err)
		}
		r.points[i] = p
	}
	return r, nil
}

// NewRingFromPoints builds a ring from points the caller has already
// validated with ParsePoint (a verifier caches its group's points).
func NewRingFromPoints(points []*edwards25519.Point) (*Ring, error) {
	if len(points) == 0 || len(points) > MaxRing {
		return nil, fmt.Errorf("%w: %d members (1..%d)", ErrRing, len(points), MaxRing)
	}
	r := &Ring{points: points, enc: make([][PointSize]byte, len(points))}
	seen := make(map[[PointSize]byte]bool, len(points))
	for i, p := range points {
		r.enc[i] = [PointSize]byte(p.Bytes())
		if seen[r.enc[i]] {
			return nil, fmt.Errorf("%w: member %d repeated", ErrRing, i)
		}
		seen[r.enc[i]] = true
	}
	return r, nil
}

// Len is the ring's size.
func (r *Ring) Len() int { return len(r.points) }

// Index returns the position of pub in the ring, or -1.
func (r *Ring) Index(pub [PointSize]byte) int {
	for i, e := range r.enc {
		if e == pub {
			return i
		}
	}
	return -1
}

// Signature is an LSAG signature.
type Signature struct {
	C0  [ScalarSize]byte
	Tag [PointSize]byte
	S   [][ScalarSize]byte
}

// Size is the encoded size of a signature over a ring of n members.
func Size(n int) int { return ScalarSize + PointSize + n*ScalarSize }

// Marshal encodes the signature: c_0, the tag, then s_0..s_{n-1}.
func (s *Signature) Marshal() []byte {
	out := make([]byte, 0, Size(len(s.S)))
	out = append(out, s.C0[:]...)
	out = append(out, s.Tag[:]...)
	for _, v := range s.S {
		out = append(out, v[:]...)
	}
	return out
}

// ParseSignature decodes a signature over a ring of n members.
func ParseSignature(b []byte, n int) (*Signature, error) {
	if n < 1 || n > MaxRing || len(b) != Size(n) {
		return nil, fmt.Errorf("%w: %d bytes for a ring of %d", ErrMalformed, len(b), n)
	}
	s := &Signature{S: make([][ScalarSize]byte, n)}
	copy(s.C0[:], b)
	copy(s.Tag[:], b[32:])
	for i := range s.S {
		copy(s.S[i][:], b[64+32*i:])
	}
	return s, nil
}

// digest is H(domain, ring, base, tag, message): the prefix of every
// challenge hash.
func digest(msg []byte, r *Ring, base *edwards25519.Point, tag []byte) []byte {
	h := sha512.New()
	h.Write([]byte("gridveil/lsag/v1\x00"))
	var n [8]byte
	binary.BigEndian.PutUint32(n[:4], uint32(len(r.enc)))
	binary.BigEndian.PutUint32(n[4:], uint32(len(msg)))
	h.Write(n[:])
	for _, e := range r.enc {
		h.Write(e[:])
	}
	h.Write(base.Bytes())
	h.Write(tag)
	h.Write(msg)
	return h.Sum(nil)
}

func challenge(d []byte, l, r *edwards25519.Point) *edwards25519.Scalar {
	h := sha512.New()
	h.Write(d)
	h.Write(l.Bytes())
	h.Write(r.Bytes())
	c, _ := new(edwards25519.Scalar).SetUniformBytes(h.Sum(nil))
	return c
}

// Sign signs msg as member index of ring, which must hold k's public key,
// with linking base base (a prime-order point, see ParsePoint).
func Sign(msg []byte, ring *Ring, index int, k *PrivateKey, base *edwards25519.Point) (*Signature, error) {
	n := ring.Len()
	if index < 0 || index >= n || ring.enc[index] != k.pub {
		return nil, fmt.Errorf("%w: the signer's key is not member %d", ErrRing, index)
	}
	tagPt := new(edwards25519.Point).ScalarMult(k.x, base)
	sig := &Signature{Tag: [PointSize]byte(tagPt.Bytes()), S: make([][ScalarSize]byte, n)}
	d := digest(msg, ring, base, sig.Tag[:])

	u, err := randomScalar()
	if err != nil {
		return nil, err
	}
	c := challenge(d, new(edwards25519.Point).ScalarBaseMult(u), new(edwards25519.Point).ScalarMult(u, base))
	cs := make([]*edwards25519.Scalar, n)
	for j := 1; j < n; j++ {
		i := (index + j) % n
		cs[i] = c
		s, err := randomScalar()
		if err != nil {
			return nil, err
		}
		sig.S[i] = [ScalarSize]byte(s.Bytes())
		l := new(edwards25519.Point).VarTimeDoubleScalarBaseMult(c, ring.points[i], s)
		r := new(edwards25519.Point).VarTimeMultiScalarMult([]*edwards25519.Scalar{s, c}, []*edwards25519.Point{base, tagPt})
		c = challenge(d, l, r)
	}
	cs[index] = c
	// s_pi = u - c_pi x_pi
	s := new(edwards25519.Scalar).Multiply(c, k.x)
	s.Subtract(u, s)
	sig.S[index] = [ScalarSize]byte(s.Bytes())
	sig.C0 = [ScalarSize]byte(cs[0].Bytes())
	return sig, nil
}

// Verify checks sig on msg over ring with linking base base.
func Verify(msg []byte, ring *Ring, base *edwards25519.Point, sig *Signature) error {
	n := ring.Len()
	if len(sig.S) != n {
		return fmt.Errorf("%w: %d responses for a ring of %d", ErrMalformed, len(sig.S), n)
	}
	tagPt, err := ParsePoint(sig.Tag[:])
	if err != nil {
		return fmt.Errorf("%w: tag: %w", ErrBadSignature, err)
	}
	c0, err := new(edwards25519.Scalar).SetCanonicalBytes(sig.C0[:])
	if err != nil {
		return fmt.Errorf("%w: c0 not canonical", ErrMalformed)
	}
	d := digest(msg, ring, base, sig.Tag[:])
	c := c0
	for i := 0; i < n; i++ {
		s, err := new(edwards25519.Scalar).SetCanonicalBytes(sig.S[i][:])
		if err != nil {
			return fmt.Errorf("%w: s_%d not canonical", ErrMalformed, i)
		}
		l := new(edwards25519.Point).VarTimeDoubleScalarBaseMult(c, ring.points[i], s)
		r := new(edwards25519.Point).VarTimeMultiScalarMult([]*edwards25519.Scalar{s, c}, []*edwards25519.Point{base, tagPt})
		c = challenge(d, l, r)
	}
	if c.Equal(c0) != 1 {
		return ErrBadSignature
	}
	return nil
}

// DeriveBase derives the linking base of a scope from a secret: t =
// H(secret, scope) and T = t G. Whoever knows secret can Trace tags under T.
func DeriveBase(secret, scope []byte) (t *edwards25519.Scalar, base *edwards25519.Point) {
	h := sha512.New()
	h.Write([]byte("gridveil/lsag-base/v1\x00"))
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(secret)))
	h.Write(n[:])
	h.Write(secret)
	h.Write(scope)
	t, _ = new(edwards25519.Scalar).SetUniformBytes(h.Sum(nil))
	return t, new(edwards25519.Point).ScalarBaseMult(t)
}

// Trace finds the ring member whose key produced tag under the base t G,
// given t: the member i with t P_i = tag. It returns -1 if there is none.
func Trace(tag [PointSize]byte, ring *Ring, t *edwards25519.Scalar) int {
	p := new(edwards25519.Point)
	for i, q := range ring.points {
		if [PointSize]byte(p.ScalarMult(t, q).Bytes()) == tag {
			return i
		}
	}
	return -1
}
