package ocpp

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// handler answers a station's CALL: the response payload, and optionally
// work to do once the response is sent (the CSMS's own CALLs, which need
// the read loop to receive their answers).
type handler func(cn *Conn, payload json.RawMessage) (resp any, after func(), err *RPCError)

// stationCalls are the actions a charging station may send.
var stationCalls = map[string]handler{
	"BootNotification":       bootNotification,
	"Heartbeat":              heartbeat,
	"StatusNotification":     empty,
	"Authorize":              authorize,
	"TransactionEvent":       transactionEvent,
	"MeterValues":            empty,
	"NotifyEVChargingNeeds":  notifyEVChargingNeeds,
	"ReportChargingProfiles": empty,
}

func stationActions() []string {
	var out []string
	for a := range stationCalls {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

func now() string { return time.Now().UTC().Format(time.RFC3339) }

func bootNotification(cn *Conn, _ json.RawMessage) (any, func(), *RPCError) {
	return map[string]any{"currentTime": now(), "interval": int(cn.csms.opts.Heartbeat / time.Second), "status": "Accepted"}, nil, nil
}

func heartbeat(*Conn, json.RawMessage) (any, func(), *RPCError) {
	return map[string]any{"currentTime": now()}, nil, nil
}

func empty(*Conn, json.RawMessage) (any, func(), *RPCError) { return struct{}{}, nil, nil }

// authorize answers whether the idToken is held by a session the LAG
// admitted (docs/OCPP.md, "Privacy"): Accepted; Invalid for what is not
// a session token at all; Unknown for a well-formed token no session at
// this LAG holds (forged, of an ended or revoked session, or of another
// LAG); ConcurrentTx for a token already in a transaction that has not
// ended. Nothing is stored either way.
func authorize(cn *Conn, payload json.RawMessage) (any, func(), *RPCError) {
	var req struct {
		IDToken IDToken `json:"idToken"`
	}
	if err := json.Unmarshal(payload, &req); err != nil {
		return nil, nil, &RPCError{Code: ErrFormatViolation, Description: err.Error()}
	}
	c := cn.csms
	held := c.holds(req.IDToken)
	c.mu.Lock()
	status := c.tokenStatus(req.IDToken, held, txKey{})
	c.mu.Unlock()
	if status != StatusAccepted {
		c.log.Warn("ocpp: idToken refused", "station", cn.station, "status", status)
	}
	return map[string]any{"idTokenInfo": IDTokenInfo{Status: status}}, nil, nil
}

func notifyEVChargingNeeds(*Conn, json.RawMessage) (any, func(), *RPCError) {
	// The schedule comes from coordinated charging, not from the EV's
	// needs: the CSMS takes note and keeps the coordinated profile.
	return map[string]any{"status": "Accepted"}, nil, nil
}

// transactionEvent records the event's energy readings in the metering
// log, on disk before the answer. A transaction becomes known at its first
// event that carries an accepted idToken (a session token, see authorize):
// that event gives it the next vehicle's schedule, sent as a TxProfile
// after the answer. Events of a transaction not known, and not authorised
// by their own token, are answered (with the token's status) and stored
// nowhere: no session, no schedule, no metering. An event repeated with the
// same seqNo (a retransmission) is answered but not recorded again.
func transactionEvent(cn *Conn, payload json.RawMessage) (any, func(), *RPCError) {
	var ev TransactionEventRequest
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, nil, &RPCError{Code: ErrFormatViolation, Description: err.Error()}
	}
	if _, err := time.Parse(time.RFC3339Nano, ev.Timestamp); err != nil {
		return nil, nil, &RPCError{Code: ErrFormatViolation, Description: fmt.Sprintf("timestamp %q: %v", ev.Timestamp, err)}
	}
	readings, exported, rerr := energyReadings(ev.MeterValue)
	if rerr != nil {
		return nil, nil, rerr
	}
	held := ev.IDToken != nil && cn.csms.holds(*ev.IDToken)
	c := cn.csms
	c.mu.Lock()
	defer c.mu.Unlock()
	k := txKey{cn.station, ev.TransactionInfo.TransactionID}
	tx := c.txs[k]
	var resp any = struct{}{}
	status := ""
	if ev.IDToken != nil {
		status = c.tokenStatus(*ev.IDToken, held, k)
		resp = map[string]any{"idTokenInfo": IDTokenInfo{Status: status}}
	}
	fresh := tx == nil
	if fresh {
		if status != StatusAccepted {
			why := "no idToken"
			if status != "" {
				why = "idToken " + status
			}
			c.log.Warn("ocpp: transaction not authorised: nothing recorded", "station", cn.station, "transaction", trimID(k.tx), "event", ev.EventType, "why", why)
			return resp, nil, nil
		}
		// A station that was offline may send Updated or Ended first; with
		// an accepted token it still gets its schedule.
		tx = &transaction{start: ev.Timestamp, evse: 1, token: ev.IDToken.IDToken, seqs: map[int]bool{}}
		if ev.EVSE != nil && ev.EVSE.ID > 0 {
			tx.evse = ev.EVSE.ID
		}
		tx.sched = VehicleSchedule{Index: -1}
		if c.opts.Schedules != nil {
			if s, ok := c.opts.Schedules.Schedule(c.nextVeh); ok {
				tx.sched, tx.hasSched = s, true
				tx.profileID = c.nextVeh + 1
			}
		}
	} else if tx.seqs[ev.SeqNo] {
		return resp, nil, nil // already on disk
	}
	rec := MeterRecord{Station: cn.station, Transaction: k.tx, Event: ev.EventType, SeqNo: ev.SeqNo, Time: ev.Timestamp, Start: tx.start,
		Vehicle: tx.sched.Index, ProfileID: tx.profileID, FirstSlot: tx.sched.FirstSlot, SlotSeconds: tx.sched.SlotSeconds, IDToken: tx.token, Readings: readings, ExportReadings: exported}
	line, err := json.Marshal(rec)
	if err != nil {
		return nil, nil, &RPCError{Code: ErrInternalError, Description: err.Error()}
	}
	if _, err := c.meter.Write(append(line, '\n')); err != nil {
		return nil, nil, &RPCError{Code: ErrInternalError, Description: fmt.Sprintf("the CSMS could not record the meter values (%v); send the event again", err)}
	}
	if err := c.meter.Sync(); err != nil {
		return nil, nil, &RPCError{Code: ErrInternalError, Description: fmt.Sprintf("the CSMS could not record the meter values (%v); send the event again", err)}
	}
	tx.seqs[ev.SeqNo] = true
	tx.ended = tx.ended || ev.EventType == "Ended"
	c.txs[k] = tx
	c.track(k, tx)
	if !fresh {
		return resp, nil, nil
	}
	if tx.hasSched {
		c.nextVeh++
	}
	if !tx.hasSched || tx.ended {
		if !tx.hasSched {
			c.log.Warn("ocpp: transaction without a schedule", "station", cn.station, "transaction", trimID(k.tx), "vehicle", c.nextVeh)
		}
		return resp, nil, nil
	}
	sched, station := tx.sched, cn.station
	after := func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.CallTimeout)
		defer cancel()
		if err := c.SetTxProfile(ctx, station, k.tx, sched); err != nil {
			c.log.Warn("ocpp: TxProfile not set", "station", station, "transaction", trimID(k.tx), "err", err)
			return
		}
		c.log.Info("ocpp: TxProfile set", "station", station, "transaction", trimID(k.tx), "vehicle", sched.Index, "periods", len(sched.PowerW))
	}
	return resp, after, nil
}
