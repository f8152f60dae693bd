// Package lsag implements linkable spontaneous anonymous group signatures
// (LSAG; Liu, Wei and Wong, "Linkable Spontaneous Anonymous Group Signature
// for Ad Hoc Groups", ACISP 2004), the ring signatures that seed 002
// proposes for anonymous authentication of battery vehicles (docs/ARCHITECTURE.md C6),
// on the prime-order subgroup of edwards25519 (filippo.io/edwards25519).
//
// A signer holding x_pi, with public key P_pi = x_pi G in a ring
// P_0..P_{n-1}, proves that it knows the secret key of one ring member
// without saying which, and publishes the link tag I = x_pi T for a linking
// base T. The signature is (c_0, s_0..s_{n-1}, I) with
//
//	c_{i+1} = H(d, s_i G + c_i P_i, s_i T + c_i I),  d = H(ring, T, I, message)
//
// closing the cycle c_n = c_0. Two signatures with the same key and the
// same base carry the same tag: that is how one credential used twice in
// one scope is exposed.
//
// Linking bases. In the original scheme T = H_p(ring) is a hash to the
// curve, which nobody can take the logarithm of. Here the base is an input
// so that the caller decides the scope, and gridveil's CA derives it as
// T = t G from a secret t per scope (DeriveBase): whoever knows t, and only
// they, can trace a tag to its ring member by comparing t P_i with I
// (Trace). Signers and verifiers never learn t. Unforgeability and
// linkability do not depend on t being secret (the proof is an OR of
// Chaum-Pedersen equalities log_G P_i = log_T I); anonymity against
// anyone who does not know t rests on the decisional Diffie-Hellman
// assumption in the edwards25519 subgroup, as in LSAG.
//
// Threat model. Protects against: forging a signature without a ring
// member's secret key; telling which member signed (anonymity set = the
// ring); a signer producing two different tags for one base (points are
// checked to lie in the prime-order subgroup, so a tag cannot hide a
// small-order component, the flaw that once let Monero key images be
// reused). Does not protect against: linking within one scope (by design:
// the tag repeats); the choice of ring itself (a ring drawn badly, or
// different rings under one tag, shrink the anonymity set by
// intersection; package auth signs with a fixed bucket of the group list,
// the same ring at every scope); a
// signer whose secret key leaks; timing of the signer's own secret
// operations beyond what edwards25519's constant-time ScalarMult and
// ScalarBaseMult give (decoy computations and verification are variable
// time over public data). Cost and size grow linearly with the ring: one
// signature is 32 (n + 2) bytes, and verification costs n double and n
// variable-base multi-scalar multiplications; there is no batch
// verification.
//
// The scheme is not audited; it is built only from audited group
// operations, SHA-512 and crypto/rand.
package lsag
