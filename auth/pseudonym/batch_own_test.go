package pseudonym

// The previous batch verifier (filippo.io/edwards25519, merged equal keys,
// one equation per chunk of 128), kept as the peer of the benchmark that
// issue 18 asked for and as an independent check of the voi-based one.

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
)

// ownBatchChunk is how many signatures share one multi-scalar
// multiplication. edwards25519's multiplication is Straus's method, whose
// per-point tables stop fitting in cache beyond a few hundred points; one
// equation per chunk keeps the cost per signature flat.
var ownBatchChunk = 128

// ownVerifyBatch reports whether every entry is a valid signature, checking
// them together with the randomized cofactored batch equation (one
// equation per chunk of entries). An empty batch is valid. Malformed keys
// or signatures make the batch invalid.
func ownVerifyBatch(entries []Entry) bool {
	for len(entries) > ownBatchChunk {
		if !ownVerifyChunk(entries[:ownBatchChunk]) {
			return false
		}
		entries = entries[ownBatchChunk:]
	}
	return ownVerifyChunk(entries)
}

func ownVerifyChunk(entries []Entry) bool {
	if len(entries) == 0 {
		return true
	}
	var (
		scalars = make([]*edwards25519.Scalar, 0, 2*len(entries)+1)
		points  = make([]*edwards25519.Point, 0, 2*len(entries)+1)
		keyIdx  = make(map[[32]byte]int, len(entries))
		bsum    = edwards25519.NewScalar()
		zbuf    = make([]byte, 32*len(entries))
		h       = sha512.New()
		digest  [64]byte
	)
	if _, err := rand.Read(zbuf); err != nil {
		return false
	}
	scalars = append(scalars, bsum)
	points = append(points, edwards25519.NewGeneratorPoint())
	for i, e := range entries {
		if len(e.PublicKey) != ed25519.PublicKeySize || len(e.Signature) != ed25519.SignatureSize {
			return false
		}
		rb, sb := e.Signature[:32], e.Signature[32:]
		R, err := new(edwards25519.Point).SetBytes(rb)
		if err != nil || !canonicalPoint(rb) {
			return false
		}
		s, err := new(edwards25519.Scalar).SetCanonicalBytes(sb)
		if err != nil {
			return false
		}
		// z_i: 128 random bits, below the group order, never zero in practice.
		zb := zbuf[32*i : 32*i+32]
		clear(zb[16:])
		z, err := new(edwards25519.Scalar).SetCanonicalBytes(zb)
		if err != nil {
			return false
		}
		h.Reset()
		h.Write(rb)
		h.Write(e.PublicKey)
		h.Write(e.Message)
		k, _ := new(edwards25519.Scalar).SetUniformBytes(h.Sum(digest[:0]))

		bsum.Subtract(bsum, new(edwards25519.Scalar).Multiply(z, s))
		scalars = append(scalars, z)
		points = append(points, R)

		zk := new(edwards25519.Scalar).Multiply(z, k)
		var kb [32]byte
		copy(kb[:], e.PublicKey)
		if j, ok := keyIdx[kb]; ok {
			scalars[j].Add(scalars[j], zk)
			continue
		}
		A, err := new(edwards25519.Point).SetBytes(e.PublicKey)
		if err != nil {
			return false
		}
		keyIdx[kb] = len(points)
		scalars = append(scalars, zk)
		points = append(points, A)
	}
	sum := new(edwards25519.Point).VarTimeMultiScalarMult(scalars, points)
	return sum.MultByCofactor(sum).Equal(edwards25519.NewIdentityPoint()) == 1
}

// canonicalPoint reports whether b, which decodes to a point, is that
// point's canonical encoding: y below p, and no sign bit when x is zero
// (y = 1 or y = -1, the only points with x = 0). crypto/ed25519.Verify
// accepts an R only in that form (it compares R's bytes with an encoding
// it computes), and so must the batch. Checking the bytes directly spares
// re-encoding R, which costs a field inversion per signature (an eighth of
// the batch's time).
func canonicalPoint(b []byte) bool {
	var y field.Element
	if _, err := y.SetBytes(b); err != nil {
		return false
	}
	want := [32]byte(b)
	want[31] &= 0x7f
	if [32]byte(y.Bytes()) != want {
		return false // y >= p
	}
	if b[31]&0x80 != 0 && (y.Equal(fieldOne) == 1 || y.Equal(fieldMinusOne) == 1) {
		return false // a sign on x = 0
	}
	return true
}

var (
	fieldOne      = new(field.Element).One()
	fieldMinusOne = new(field.Element).Negate(fieldOne)
)
