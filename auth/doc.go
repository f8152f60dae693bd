// Package auth implements context-aware anonymous authentication among
// battery vehicles (BV), local aggregators (LAG) and the central authority
// (CA), docs/ARCHITECTURE.md C6, after seed 002 (context-aware V2G authentication:
// battery-status and role awareness, mobility, discharging modes, ring
// signatures) with seed 004's conditional privacy (ECPP, Lu et al. 2008).
// docs/AUTH.md describes the protocol message by message.
//
// The parties are pure state machines, like etcd's raft: CA, LAG and
// BVSession consume frames with the current time and return frames to send,
// connections to close and events (what they learned); they do no I/O and
// hold no clocks. Cryptographic randomness (keys, nonces, challenges,
// ephemeral Noise keys) comes from crypto/rand only, never from a seeded
// generator. Package authnet runs them over TCP. A LAG also takes a frame
// and a batch verification in steps (Step, Batch) whose costly middle part
// (the handshake's DHs, decryption, signature checks) touches only one
// session's or one batch's data and needs no lock, so that its shell can
// spread that work over every core while the state machine itself stays
// single-threaded and deterministic for a given order of calls.
//
// The protocol:
//
//   - Enrolment: over a Noise NK channel to the CA's static key and with the
//     enrolment credential the operator had the CA issue for its name
//     (admission.go; needed the first time only), a vehicle registers its
//     real identity, group attribute (its utility), an Ed25519 identity key
//     and an LSAG key, and receives pseudonym certificates for keys it
//     generated and the keys of its group's list it lacks, under the list's
//     signed head; a LAG, with its own credential, gets a certificate on
//     its Noise static key, batch-signing key and group.
//   - Session: the LAG sends its certificate, the schemes it offers and its
//     LSAG linking base in a clear hello, which is the Noise prologue; the
//     vehicle checks the certificate and runs Noise NK
//     (25519, ChaCha20-Poly1305, SHA-256) to the certified static key,
//     staying anonymous itself. Forward secrecy comes from the ephemeral
//     keys. The LAG's fresh 32-byte challenge travels in the second
//     handshake message.
//   - Charging -> fully charged (seed 002's first transition): the vehicle
//     signs the channel binding (the handshake hash), the challenge, the
//     LAG's identity, scheme, role and credential with an anonymous
//     credential (package pseudonym or package lsag); the LAG verifies
//     (pseudonym credentials in a batch), forwards the evidence to the CA
//     over its Noise IK link; the CA verifies again, resolves the vehicle,
//     applies revocation and clone rules and returns a signed permit bound to
//     the session; the vehicle checks the permit and grants access with an
//     HMAC. The LAG confirms each batch of gathered vehicles with one
//     signature over a Merkle root. Fully charged is a status sealed to the
//     CA.
//   - Fully charged -> discharging: the CA's signed request reaches storage
//     and supply vehicles with the LAG's HMAC operator (a key the vehicle
//     chose in the channel); the vehicle seals Agree or Decline to the CA
//     (HPKE, fixed length) and signs it under its session credential; the
//     CA acknowledges with a reply sealed to a one-time key of the vehicle.
//     A vehicle may change its mind (ReviseAnswers).
//   - Discharging -> charging: the vehicle's real battery status goes to
//     the CA sealed; the LAG forwards the pseudo-status; the CA returns the
//     real status sealed to the vehicle and, to the LAG, sums over at least
//     CAConfig.AggregateMin vehicles, in disjoint batches.
//   - Charging stations: an admitted session's StationToken (the OCPP
//     idToken, package ocpp) is an HMAC under the session's operation key
//     over the LAG id and the channel binding; the vehicle
//     (BVSession.StationToken) and the LAG (HoldsStationToken, an index)
//     derive it, nobody else can, not even whoever recorded the handshake,
//     and two sessions' tokens are unrelated.
//   - Roles: load vehicles charge, storage and supply vehicles get discharge
//     requests; in distributed mode the LAG shares the pool supply vehicles
//     discharged into among load vehicles, naming no supplier.
//   - Mobility: a vehicle whose group is the LAG's is at home (full
//     service, and a single-use resumption ticket for a later session with
//     symmetric cryptography only and no permit round trip); elsewhere it
//     is visiting (basic service, no ticket, full anonymous authentication).
//   - Conditional privacy: only the CA traces (CA.Trace) by opening a
//     pseudonym's HPKE tracing tag or by matching an LSAG link tag against
//     the ring with the scope's secret; revocation reaches every linked LAG
//     at once and terminates the vehicle's sessions.
//
// Threat model (docs/SECURITY.md has it in full, with the certificateless
// Type I and Type II adversaries of seed 004's notes). The CA is trusted
// (it can trace everyone and issue for anyone, as in the seed). LAGs are
// honest but curious and may be malicious toward vehicles; the network is
// controlled by the attacker.
// Protected against, each by a test (docs/AUTH.md lists them): replay of a
// captured session or of forwarded evidence; impersonation of a LAG
// without a CA certificate (or with an expired or revoked one) and of a
// vehicle without a credential; tampering with any byte of any frame or
// signed object; cloning (one vehicle's credentials active at two sessions
// at once is refused by the CA and recorded as an Incident with the
// identity); eavesdropping (no identity, group, battery value, answer or
// credential reference on the wire); revoked and expired credentials;
// downgrade of the scheme or version; a LAG, or LAGs together, linking
// one vehicle's sessions beyond what is accepted below (pseudonym windows
// are aligned on fixed periods; LSAG rings are fixed buckets of the group
// list); the LAG learning a vehicle's identity, battery status or
// discharge answer (fixed-length sealed messages; aggregates over at least
// AggregateMin vehicles, never differing by one).
//
// Not protected against: a compromised CA; traffic analysis (timing, the
// number of messages per session, which session answered when); what the
// LAG observes physically (current flowing through its charger reveals
// charging, full and discharging); an aggregate whose vehicles all agreed
// or all declined (it reveals every answer); linkability that the design
// accepts: LSAG sessions of one vehicle at one LAG within one epoch (one
// hour) share a link tag, LSAG's anonymity set is the ring, and a home LAG
// can link the resumptions of one vehicle; denial of service; vehicles or LAGs whose own keys leak; the
// revocation list, which links the revoked vehicle's unexpired pseudonyms.
// A CA restart forgets active sessions and open discharge requests' answers
// (credentials, registrations and the use of every pseudonym persist).
package auth
