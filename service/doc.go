// Package service runs gridveil's parties as services (docs/ARCHITECTURE.md, C8 Platform): each
// wires a pure core to the message bus (package transport), to storage and
// to logs and metrics. The cores decide; the services only move messages,
// save state and keep time.
//
//   - SO (RunSO): the system operator's coordination, charging.Coordinator
//     over NATS. It re-broadcasts a round until every report is in (NATS
//     delivers at most once), saves its state (fsync'd) after every round
//     so a restart resumes the day, and logs every refused message with its
//     subject and reason.
//   - EV host (RunEVHost): many vehicles in one process, each a
//     charging.Vehicle holding only its own local set, answering its bus's
//     broadcasts.
//
// Threat model: as in package transport, NATS is neither private nor
// authenticated; what a vehicle sends the SO goes through the run's
// aggregation mechanism, and the SO accepts reports only from the
// pseudonyms that joined each bus (docs/PLATFORM.md says what is and is
// not yet enforced).
package service
