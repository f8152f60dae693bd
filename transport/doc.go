// Package transport carries gridveil's messages between parties over NATS
// (docs/ARCHITECTURE.md, C8 Platform): an in-process nats-server for one machine, so that
// nothing needs installing, or an external server or cluster for many.
//
// It knows subjects and bytes, not what the bytes mean: each concept's
// package owns its encodings (charging.Broadcast, charging.Report, ...) and
// each service decodes what it receives. Subjects are per feeder and bus
// (Subjects), so that the system operator's fan-in can be sharded by
// feeder with NATS subscriptions and queue groups.
//
// What it protects against: nothing on its own. NATS delivers at most
// once and unauthenticated; the protocols above it retransmit (the SO
// re-broadcasts a round until every report is in; handling is idempotent),
// bound every message's size, and carry their own authentication and
// privacy (C3's mechanisms for what vehicles report, C6 sessions for who
// may join a bus). The embedded server listens on loopback only.
package transport
