package pseudonym

import (
	"crypto/ed25519"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// Entry is one Ed25519 signature to verify.
type Entry struct {
	PublicKey []byte
	Message   []byte
	Signature []byte
}

// batchOptions are the rules every signature is checked by, in a batch and
// alone (voi's defaults): RFC 8032's cofactored equation, s below the group
// order, R and A canonical encodings, small-order R allowed and
// small-order A refused (no honest key has small order; the CA also
// refuses such pseudonym keys at issue, CheckKey). Batch and single
// verification therefore accept exactly the same signatures.
var batchOptions = &voi.Options{Verify: voi.VerifyOptionsDefault}

// precomputeBelow is voi's own bound (batchPippengerThreshold): a batch
// of fewer signatures whose keys are all expanded (a table of multiples
// of -A per key) is checked with those tables; a larger one by Pippenger's
// method on the plain points.
const precomputeBelow = (190 - 1) / 2

// newBatch loads well-formed entries into curve25519-voi's batch verifier
// and returns their indices. Below precomputeBelow each distinct key is
// expanded once (the CA's key signs every certificate, so a batch of
// credentials has about half as many keys as signatures; voi alone would
// expand the CA's key once per certificate); from there on no key is
// expanded (voi alone would expand the first 93 and then not use them).
// An entry with a key or signature of the wrong length is left out (voi's
// single verification panics on a short key).
func newBatch(entries []Entry) (*voi.BatchVerifier, []int) {
	v := voi.NewBatchVerifierWithCapacity(len(entries))
	idx := make([]int, 0, len(entries))
	var expanded map[[32]byte]*voi.ExpandedPublicKey
	if len(entries) < precomputeBelow {
		expanded = make(map[[32]byte]*voi.ExpandedPublicKey, len(entries))
	} else {
		v.ForceNoPublicKeyExpansion()
	}
	for i, e := range entries {
		if len(e.PublicKey) != ed25519.PublicKeySize || len(e.Signature) != ed25519.SignatureSize {
			continue
		}
		idx = append(idx, i)
		if expanded == nil {
			v.AddWithOptions(e.PublicKey, e.Message, e.Signature, batchOptions)
			continue
		}
		k := [32]byte(e.PublicKey)
		x, ok := expanded[k]
		if !ok {
			// A key that does not decode gives nil, which voi records as an
			// invalid entry (and the precomputed path is then not taken).
			x, _ = voi.NewExpandedPublicKey(e.PublicKey)
			expanded[k] = x
		}
		if x == nil {
			v.AddWithOptions(e.PublicKey, e.Message, e.Signature, batchOptions)
			continue
		}
		v.AddExpandedWithOptions(x, e.Message, e.Signature, batchOptions)
	}
	return v, idx
}

// VerifyBatch reports whether every entry is a valid signature, checking
// them together with the randomized cofactored batch equation (one
// multi-scalar multiplication, Pippenger's method beyond a few dozen
// signatures). An empty batch is valid. Malformed keys or signatures make
// the batch invalid.
func VerifyBatch(entries []Entry) bool {
	if len(entries) == 0 {
		return true
	}
	v, idx := newBatch(entries)
	return len(idx) == len(entries) && v.VerifyBatchOnly(nil) // nil: crypto/rand
}

// VerifyEach reports each entry's validity: one batch equation when all
// are valid; otherwise each signature is checked alone, by the same rules
// (voi reuses the decoded points and hashes, so the fallback costs one
// double-scalar multiplication per signature).
func VerifyEach(entries []Entry) []bool {
	ok := make([]bool, len(entries))
	if len(entries) == 0 {
		return ok
	}
	v, idx := newBatch(entries)
	if len(idx) == 0 {
		return ok
	}
	_, valid := v.Verify(nil)
	for k, i := range idx {
		ok[i] = valid[k]
	}
	return ok
}
