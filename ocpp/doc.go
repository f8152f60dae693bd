// Package ocpp is gridveil's charging station management system (CSMS):
// the endpoint real OCPP 2.0.1 and 2.1 charging stations connect to, run
// by the station's aggregator (the LAG role, docs/ARCHITECTURE.md C8).
//
// It speaks OCPP-J over WebSocket (subprotocols "ocpp2.1", preferred, and
// "ocpp2.0.1"; security profile 1: HTTP basic auth; 2: the same over TLS;
// 3: TLS client certificates), pings every station and closes the dead
// ones. Every message, in both directions, is validated against the Open
// Charge Alliance's JSON schemas of the connection's version, vendored in
// schemas/.
//
// A transaction starts only with the idToken of a vehicle's anonymous C6
// session at this LAG (SessionToken, checked against the LAG's index of
// its active sessions through an Authorizer such as LAGSessions): a forged
// token, an ended or revoked session's, or another LAG's is refused and
// nothing is stored, and the running transaction of a session that ends
// is stopped (StopVoided). The token is an HMAC under the session's
// operation key, which only the vehicle and the LAG hold
// (auth.StationToken): unlinkable across sessions, out of reach of whoever
// recorded the handshake, and opaque to the station. When a transaction starts, the CSMS sends the vehicle's
// coordinated schedule as a SetChargingProfile (TxProfile, in W, one
// period per slot; on 2.1 TxProfileV2X, whose discharge slots are
// CentralSetpoint periods with negative setpoints). The energy the station
// then reports in TransactionEvent meter values is appended to
// metering.jsonl, on disk before the CSMS answers, and is the metered
// delivery the ledger settles against charging rights (Delivery,
// ledger.DayStation.Delivered).
//
// docs/OCPP.md describes how to run it, what a CSMS learns and what
// gridveil hides.
package ocpp
