// Package ledger is the consortium ledger of docs/ARCHITECTURE.md C7: a CometBFT
// (v0.38) ABCI application whose state is the charging-rights market of
// seed 003, and an embedded single-validator node to run it.
//
// State is a pure, deterministic state machine: integer amounts (Wh,
// milli-currency), maps serialized with sorted keys, no clock but the
// block's consensus time. Each 30-minute delivery window goes through the
// seed's phases, counted back from its start: demand (-30..-25 min; the
// grid company posts its load margin), satisfaction (-25: rho = min(1,
// M / sum d) and initial rights floor(rho d_s)), bids (-23..-20), clearing
// (-20: the book is cleared with package market and settled at once:
// rights to buyers, money to sellers, fees and any surplus to the grid
// company, reservations returned), then P2P, fees and delivery.
//
// Transactions are JSON envelopes signed with Ed25519 over a domain-
// separated body that names the chain and the signer's next nonce: a
// forged, replayed or cross-chain transaction is rejected with a typed
// reason (result code) and leaves the state unchanged. App persists in
// Commit what the block changed (one synced bbolt transaction, store.go),
// so a restart replays only the blocks after it; the app hash commits to
// the state as sorted per-key leaves (commit.go), re-hashing only the keys
// a block touched.
//
// With a GridModel in genesis (the feeder's tree with integer resistances)
// the grid company posts, with each margin, every bus's voltage headroom
// and congestion fee; clearing then runs seed 003's line security check on
// each match in turn (the LinDistFlow drop of every bus, computed in
// integers through the tree, may not pass both the headroom and where it
// already was) and charges the buyer its bus's congestion fee. Consensus
// arithmetic is integer throughout: Go may fuse floating-point multiply-adds
// on some architectures, which would split the chain.
//
// After clearing, stations may settle P2P contracts that both parties
// signed (the seller's signature over the contract, the buyer's over the
// envelope); the grid company then reports metered delivery, which charges
// penalties for deviating from rights and moves reputations. Reputation
// levels bound whom a station may match (market.Reputation), and a
// station's validator has voting power stake x reputation, handed to
// CometBFT as validator updates. Each window records the grid company's
// income by source. Driver and RunDay run the application block by block
// on a simulated clock for the simulator; StartNode and InitNetwork run it
// under real consensus.
//
// Threat model: any participant may send malformed, unsigned, replayed,
// out-of-phase or over-quantity transactions; validators are trusted to
// follow the protocol up to CometBFT's fault tolerance (fewer than a third
// of the voting power Byzantine). Stations' private values and demand are
// public on the ledger: confidentiality of bids is not a goal here.
package ledger
