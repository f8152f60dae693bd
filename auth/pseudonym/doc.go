// Package pseudonym implements pseudonym certificates, the first anonymous
// credential of gridveil's authentication (docs/ARCHITECTURE.md C6; seed 002's
// anonymous group-attribute proof, built the way deployed V2X systems and
// ECPP (Lu et al., INFOCOM 2008, seed 004) build conditional privacy).
//
// The central authority (CA) signs, with Ed25519, a short-lived pseudonym
// key that the vehicle generated itself. The certificate carries only
//
//   - a random 128-bit serial,
//   - the group attribute (for example the vehicle's utility),
//   - a validity window,
//   - the pseudonym's Ed25519 public key, and
//   - a tracing tag: the vehicle's real identity, padded to a fixed length
//     and encrypted to the CA's tracing key with HPKE (RFC 9180,
//     DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305, from the
//     standard library's crypto/hpke), bound to the serial through the HPKE
//     info string.
//
// A vehicle proves membership of its group by signing a fresh challenge
// with the pseudonym key. Each certificate is meant for one session: a new
// session uses a new pseudonym, so sessions are unlinkable to anyone but
// the CA.
//
// Batch verification. VerifyBatch checks many Ed25519 signatures at once
// with the randomized, cofactored batch equation (RFC 8032 section 5.1.7;
// Bernstein et al. 2012): with independent random 128-bit z_i,
//
//	[8] ( -(sum z_i s_i) B + sum z_i R_i + sum (z_i k_i) A_i ) = 0
//
// evaluated as one multi-scalar multiplication by curve25519-voi's
// BatchVerifier (code CometBFT already depends on; it replaced
// gridveil's own filippo.io/edwards25519 batch, 1.2-1.7x slower on the same
// signatures, issue 18). VerifyEach falls back to checking each signature
// alone when a batch fails, by the same rules, so it names every bad one.
// Randomness comes from crypto/rand.
//
// Threat model. Protects against: forging or altering a certificate
// (Ed25519 unforgeability under the CA key); learning the real identity
// from a certificate (HPKE IND-CCA2: only the holder of the CA's tracing
// key opens the tag; the tag's plaintext has a fixed length, so its size
// says nothing); moving a tag to another certificate (the serial is in the
// HPKE info, and the CA signature covers the tag); small-order or
// non-canonical pseudonym keys (CheckKey, applied by the CA at issue).
// Does not protect against: a vehicle that reuses a certificate (the
// verifier, or the CA, must detect reuse by the serial: package auth does);
// a compromised CA (it can issue for anyone and trace everyone, by design);
// the validity window and group as metadata (a rare group is a small
// anonymity set; a window that depends on when the vehicle enrolled links
// its pseudonyms, so package auth's CA issues windows aligned on fixed
// periods); revocation, which is by serial on the CA's revocation list
// (package auth), and which links the revoked vehicle's listed serials.
//
// Batch and single verification follow the same rules (voi's defaults:
// the cofactored equation, s below the group order, canonical R and A,
// small-order A refused). crypto/ed25519.Verify, which package auth uses
// elsewhere, is cofactorless; the two agree on every signature an honest
// signer makes, and only the holder of a key can craft a signature that
// one accepts and the other does not, which forges nothing.
package pseudonym
