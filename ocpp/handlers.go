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

// authorize accepts every idToken. Under gridveil the token a station
// presents is the vehicle's anonymous C6 session identifier, not a
// contract id (docs/OCPP.md); the LAG admitted that session already, so
// the CSMS has nothing more to check and learns no identity.
func authorize(*Conn, json.RawMessage) (any, func(), *RPCError) {
	return map[string]any{"idTokenInfo": IDTokenInfo{Status: "Accepted"}}, nil, nil
}

func notifyEVChargingNeeds(*Conn, json.RawMessage) (any, func(), *RPCError) {
	// The schedule comes from coordinated charging, not from the EV's
	// needs: the CSMS takes note and keeps the coordinated profile.
	return map[string]any{"status": "Accepted"}, nil, nil
}

// transactionEvent records the event's energy readings in the metering
// log, on disk before the answer. A Started event gives the transaction
// the next vehicle's schedule, sent as a TxProfile after the answer; an
// event repeated with the same seqNo (a retransmission) is answered but
// not recorded again.
func transactionEvent(cn *Conn, payload json.RawMessage) (any, func(), *RPCError) {
	var ev TransactionEventRequest
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, nil, &RPCError{Code: ErrFormatViolation, Description: err.Error()}
	}
	if _, err := time.Parse(time.RFC3339Nano, ev.Timestamp); err != nil {
		return nil, nil, &RPCError{Code: ErrFormatViolation, Description: fmt.Sprintf("timestamp %q: %v", ev.Timestamp, err)}
	}
	readings, rerr := energyReadings(ev.MeterValue)
	if rerr != nil {
		return nil, nil, rerr
	}
	var resp any = struct{}{}
	if ev.IDToken != nil {
		resp = map[string]any{"idTokenInfo": IDTokenInfo{Status: "Accepted"}}
	}
	c := cn.csms
	c.mu.Lock()
	defer c.mu.Unlock()
	k := txKey{cn.station, ev.TransactionInfo.TransactionID}
	tx := c.txs[k]
	fresh := tx == nil
	if fresh {
		// A transaction is new at its first event; a station that was
		// offline may send Updated or Ended first, and still gets its
		// schedule.
		tx = &transaction{start: ev.Timestamp, evse: 1, seqs: map[int]bool{}}
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
		Vehicle: tx.sched.Index, ProfileID: tx.profileID, FirstSlot: tx.sched.FirstSlot, SlotSeconds: tx.sched.SlotSeconds, Readings: readings}
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
	if !fresh {
		return resp, nil, nil
	}
	c.txs[k] = tx
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
