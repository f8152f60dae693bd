// Package aggregate implements the private aggregation mechanisms that sit
// between the vehicles and the system operator inside coordinated charging
// (docs/ARCHITECTURE.md C3), and the attacks that score them.
//
// Each Mechanism is a charging.Aggregator: once per iteration and bus it
// simulates what every vehicle of the bus sends and how the SO recovers the
// bus sum from it. The mechanisms:
//
//   - None: schedules in the clear, the insecure baseline.
//   - Obfuscation: seed 001's Algorithm 1 (m Gaussian-perturbed copies per
//     slot, the SO subtracts the bus key n_b mu_b).
//   - Masking: pairwise-mask secure aggregation with double masking
//     (Bonawitz et al., CCS 2017), on X25519, HKDF-SHA256, AES-128-CTR and
//     ChaCha8 from the standard library. Dropouts are recovered by the
//     survivors revealing that iteration's masks with the dropped, not by
//     Bonawitz's shared keys, because keys here last over iterations and a
//     revealed key would unmask a vehicle's earlier reports. Mask keys can
//     be signed under pseudonym certificates of C6 (auth/pseudonym), so
//     that the LAG relaying them cannot substitute its own. Its two sides
//     are protocol cores with no I/O, MaskVehicle (one vehicle) and
//     MaskAggregator (the SO at one bus), stepping by the messages of
//     maskmsg.go (versioned binary encodings, fuzzed decoders); Masking
//     drives them in memory for `gridveil sim`, package service moves the
//     same messages over NATS for `gridveil up --privacy masking`.
//   - Shamir: threshold secret sharing of each report among shareholders
//     (Shamir 1979), over GF(2^61 - 1).
//   - DP: the Gaussian mechanism per report, with a basic and a zCDP
//     accountant for the loss over all iterations.
//
// Attack runs real estimators for a curious SO (one iteration and averaged
// over iterations), an eavesdropper on one vehicle's link, curious vehicles
// at the same bus alone and colluding, and the SO colluding with them, each
// on exactly what that adversary sees, and scores them by RMSE against the
// true schedules next to the prior of public information.
//
// Each mechanism's type documentation states its threat model: what it
// protects against and what it does not. Randomness: keys, self-mask seeds
// and share polynomials come from crypto/rand (directly or through a
// ChaCha8 generator seeded from it; MaskVehicle takes the reader as an
// input, and every caller passes crypto/rand); the noise of obfuscation and DP, and
// simulated dropouts, come from generators seeded by the simulation's seed,
// so that runs reproduce. A deployment draws those from crypto/rand too.
//
// The cryptographic mechanisms keep the solver deterministic: masks cancel
// exactly in Z_2^64 and shares interpolate exactly in GF(P), so the SO's
// sums do not depend on the random keys.
package aggregate
