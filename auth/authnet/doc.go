// Package authnet runs gridveil's authentication parties (package auth) as
// network services, docs/ARCHITECTURE.md C6 over C8's shells: a CA server, a LAG
// server and vehicle clients, over TCP, with keys and state in a data
// directory.
//
// The cores do all protocol work; this package only moves frames, keeps
// time and stores files. Each connection carries frames of package wire
// (a 4-byte big-endian length, then the payload; at most 1 MiB from
// vehicles, 4 MiB between LAG and CA). A LAG dials the CA and keeps that
// link up, reconnecting with back-off. Authentication requests are batched
// by a short window (BatchWindow) and verified together, in one part per
// core. A vehicle's frame is handled in the core's three steps
// (auth.Step): its cryptography runs in the connection's goroutine without
// the LAG's lock, so handshakes use every core.
//
// Files (all but the evidence file and state.db written atomically: a
// temporary file in the same directory, fsync, rename, fsync of the
// directory):
//
//	CA    ca.key (0600)    the CA's secrets (auth.CAKeys)
//	      admin.key (0600) the operator's X25519 key, hex: traces and revokes through the running CA (RunAdmin)
//	      public.key       the CA's public keys, hex: give it to LAGs and vehicles
//	      enrol.token      the shared enrolment token of earlier versions, hex (0600): only with
//	                       CAConfig.SharedToken (a migration); else refused
//	      state.db (0600)  bbolt database of registrations, listed serials and their use, LAG certificates,
//	                       revocations, billing, enrolment credentials' hashes (auth.CATables); written
//	                       and synced before the CA answers
//	any   <name>.cred      an enrolment credential (CredentialFile), hex (0600), from gridveil ca issue
//	      state.json.imported  the whole-state JSON of earlier versions, once imported into state.db
//	LAG   lag.key (0600)   Noise static key, batch-signing key, ticket key
//	      cert             the CA's certificate on the LAG
//	      evidence.jsonl   (0600, appended) evidence of every admitted session, for the CA to trace
//	BV    <id>.json (0600) the vehicle's keys, unused pseudonyms, group list, tickets
//
// Threat model. Protects against: a crash in the middle of a write
// (files are replaced whole or not at all; state.db transactions are
// atomic); a crash of the CA at any point (what it confirmed is on disk:
// CAServer group-commits every change before the answers that confirm it,
// TestCAKilledKeepsWhatItConfirmed); restarts of a LAG or the CA (the CA
// reconciles a LAG's sessions when it links, tickets whose origin the CA
// forgot fall back to full authentication); a torn last line of the
// evidence file; peers that send oversized frames (refused before
// allocation) or stall (writes time out, idle reads time out, a peer that
// cannot keep up with its queue is disconnected); idle but live sessions
// and links (keepalives); peers that have not authenticated (Limits: a
// handshake deadline, caps per source and in all with the oldest evicted,
// small frames whose buffers grow as bytes arrive, a shared memory
// budget; every refusal logged with its reason). Does not protect
// against: denial of service by an attacker with many source addresses
// who keeps opening connections (it evicts honest peers mid-handshake) or
// spends the handshakes' DHs; an attacker with
// access to the data directory (keys are stored unencrypted, protected
// only by file modes); loss of sessions at a CA restart (they are not
// durable: LAGs end them when they re-link, and vehicles authenticate
// again). Everything the cores protect against is protected over the
// network too: the shells pass frames unchanged.
package authnet
