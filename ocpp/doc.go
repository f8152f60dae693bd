// Package ocpp is gridveil's charging station management system (CSMS):
// the endpoint real OCPP 2.0.1 charging stations connect to, run by the
// station's aggregator (the LAG role, docs/ARCHITECTURE.md C8).
//
// It speaks OCPP-J 2.0.1 over WebSocket (subprotocol "ocpp2.0.1", security
// profile 1: HTTP basic auth; profile 2: the same over TLS). Every message,
// in both directions, is validated against the Open Charge Alliance's JSON
// schemas vendored in schemas/. When a transaction starts, the CSMS sends
// the vehicle's coordinated schedule as a SetChargingProfile (TxProfile, in
// W, one period per slot); the energy the station then reports in
// TransactionEvent meter values is appended to metering.jsonl, on disk
// before the CSMS answers, and is the metered delivery the ledger settles
// against charging rights (Delivery, ledger.DayStation.Delivered).
//
// docs/OCPP.md describes how to run it, what a CSMS learns and what
// gridveil hides.
package ocpp
