package ocpp

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"time"
)

// MeteringFile is the CSMS's metered-delivery log in its data directory:
// one JSON line (a MeterRecord) per TransactionEvent it accepted, appended
// and synced to disk before the station gets its answer.
const MeteringFile = "metering.jsonl"

// MeterRecord is one line of metering.jsonl (docs/OCPP.md): a
// TransactionEvent's energy register readings, with the transaction's
// place in the coordinated schedule.
type MeterRecord struct {
	Station     string    `json:"station"`        // charging station identity
	Transaction string    `json:"transaction_id"` // the station's transactionId
	Event       string    `json:"event"`          // Started, Updated, Ended
	SeqNo       int       `json:"seq_no"`
	Time        string    `json:"time"`               // the event's timestamp, station clock
	Start       string    `json:"tx_start"`           // the Started event's timestamp: slot 0 of the profile
	Vehicle     int       `json:"vehicle"`            // index of the vehicle whose schedule the transaction got; -1 none
	ProfileID   int       `json:"profile_id"`         // the TxProfile's id; 0 none
	FirstSlot   int       `json:"first_slot"`         // horizon slot of the transaction's start
	SlotSeconds int       `json:"slot_seconds"`       // 0 without a schedule
	IDToken     string    `json:"id_token"`           // the session token that authorised the transaction
	Readings    []Reading `json:"readings,omitempty"` // Energy.Active.Import.Register, Wh
	// ExportReadings are the Energy.Active.Export.Register samples, Wh:
	// what a discharging (OCPP 2.1 V2X) vehicle fed back.
	ExportReadings []Reading `json:"export_readings,omitempty"`
}

// Reading is one sample of a station's energy register.
type Reading struct {
	Time string  `json:"time"`
	Wh   float64 `json:"wh"`
}

// energyReadings extracts the energy register samples of mvs in Wh, total
// over the phases, at the outlet: Energy.Active.Import.Register (the
// measurand OCPP assumes when none is given: what the vehicle drew) and
// Energy.Active.Export.Register (what it fed back, under V2X).
func energyReadings(mvs []MeterValue) (imp, exp []Reading, rerr *RPCError) {
	for _, mv := range mvs {
		for _, sv := range mv.SampledValue {
			out := &imp
			switch sv.Measurand {
			case "", "Energy.Active.Import.Register":
			case "Energy.Active.Export.Register":
				out = &exp
			default:
				continue
			}
			if sv.Phase != "" || (sv.Location != "" && sv.Location != "Outlet") {
				continue
			}
			wh := sv.Value
			unit, mult := "Wh", 0
			if u := sv.UnitOfMeasure; u != nil {
				if u.Unit != "" {
					unit = u.Unit
				}
				mult = u.Multiplier
			}
			switch unit {
			case "Wh":
			case "kWh":
				wh *= 1000
			default:
				return nil, nil, &RPCError{Code: ErrPropertyConstraintViolation, Description: fmt.Sprintf("%s in unit %q: report it in Wh or kWh", cmp.Or(sv.Measurand, "Energy.Active.Import.Register"), unit)}
			}
			wh *= math.Pow10(mult)
			if wh < 0 || math.IsInf(wh, 0) || math.IsNaN(wh) {
				return nil, nil, &RPCError{Code: ErrPropertyConstraintViolation, Description: fmt.Sprintf("%s = %v Wh: an energy register is never negative", cmp.Or(sv.Measurand, "Energy.Active.Import.Register"), wh)}
			}
			if _, err := time.Parse(time.RFC3339Nano, mv.Timestamp); err != nil {
				return nil, nil, &RPCError{Code: ErrFormatViolation, Description: fmt.Sprintf("meter value timestamp %q: %v", mv.Timestamp, err)}
			}
			*out = append(*out, Reading{Time: mv.Timestamp, Wh: wh})
		}
	}
	return imp, exp, nil
}

// Delivery is the energy one transaction drew, per slot of the
// coordinated horizon: the metered delivery the ledger settles (feed
// WindowWh into ledger.DayStation.Delivered).
type Delivery struct {
	Station     string
	Transaction string
	Vehicle     int
	FirstSlot   int
	SlotSeconds int
	// SlotWh[k] is the register's increase attributed to slot FirstSlot+k:
	// the increase between two readings goes to the slot in which the later
	// one falls (a reading exactly on a slot's end belongs to that slot), so
	// a station that samples at least once per slot
	// (SampledDataTxUpdatedInterval <= the slot) is metered slot by slot.
	SlotWh  []int64
	TotalWh int64 // last reading minus the first, rounded to Wh
	// ExportSlotWh and ExportWh are the same for the export register: the
	// energy a discharging vehicle fed back (OCPP 2.1 V2X); empty and 0
	// for a station that reports none.
	ExportSlotWh []int64
	ExportWh     int64
	Ended        bool
}

// WindowWh sums d over windows of spw slots of a horizon of slots slots:
// what ledger.DayStation.Delivered takes (the ledger's delivery windows
// are groups of spw slots, as gridveil sim --market forms them).
func (d *Delivery) WindowWh(slots, spw int) []int64 {
	out := make([]int64, (slots+spw-1)/spw)
	for k, wh := range d.SlotWh {
		if t := d.FirstSlot + k; t >= 0 && t < slots {
			out[t/spw] += wh
		}
	}
	return out
}

// ReadMetering reads a metering.jsonl and returns each transaction's
// delivery, by station and transaction id. A retransmitted event (same
// station, transaction and seqNo) counts once.
func ReadMetering(path string) ([]*Delivery, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ocpp: metering: %w", err)
	}
	defer f.Close()
	type key struct{ station, tx string }
	recs := map[key][]MeterRecord{}
	var order []key
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for line := 1; sc.Scan(); line++ {
		var r MeterRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("ocpp: metering: %s line %d: %w (the file is written by the CSMS only; restore it from a backup)", path, line, err)
		}
		k := key{r.Station, r.Transaction}
		if _, ok := recs[k]; !ok {
			order = append(order, k)
		}
		recs[k] = append(recs[k], r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("ocpp: metering: %s: %w", path, err)
	}
	var out []*Delivery
	for _, k := range order {
		d, err := delivery(recs[k])
		if err != nil {
			return nil, fmt.Errorf("ocpp: metering: station %q transaction %q: %w", k.station, k.tx, err)
		}
		out = append(out, d)
	}
	return out, nil
}

func delivery(recs []MeterRecord) (*Delivery, error) {
	first := recs[0]
	d := &Delivery{Station: first.Station, Transaction: first.Transaction, Vehicle: first.Vehicle, FirstSlot: first.FirstSlot, SlotSeconds: first.SlotSeconds}
	start, err := time.Parse(time.RFC3339Nano, first.Start)
	if err != nil {
		return nil, fmt.Errorf("tx_start %q: %w", first.Start, err)
	}
	seen := map[int]bool{}
	var imp, exp []Reading
	for _, r := range recs {
		if seen[r.SeqNo] {
			continue
		}
		seen[r.SeqNo] = true
		if r.Event == "Ended" {
			d.Ended = true
		}
		imp = append(imp, r.Readings...)
		exp = append(exp, r.ExportReadings...)
	}
	if d.SlotWh, d.TotalWh, err = perSlot(imp, start, d.SlotSeconds); err != nil {
		return nil, err
	}
	if d.ExportSlotWh, d.ExportWh, err = perSlot(exp, start, d.SlotSeconds); err != nil {
		return nil, err
	}
	return d, nil
}

// perSlot attributes a register's increase to the slots of slotSeconds
// from start (none when slotSeconds is 0) and gives its total increase.
func perSlot(readings []Reading, start time.Time, slotSeconds int) ([]int64, int64, error) {
	type sample struct {
		t  time.Time
		wh float64
	}
	samples := make([]sample, 0, len(readings))
	for _, rd := range readings {
		t, err := time.Parse(time.RFC3339Nano, rd.Time)
		if err != nil {
			return nil, 0, err
		}
		samples = append(samples, sample{t, rd.Wh})
	}
	if len(samples) == 0 {
		return nil, 0, nil
	}
	sort.SliceStable(samples, func(a, b int) bool { return samples[a].t.Before(samples[b].t) })
	total := int64(math.Round(samples[len(samples)-1].wh - samples[0].wh))
	if slotSeconds <= 0 {
		return nil, total, nil
	}
	slot := time.Duration(slotSeconds) * time.Second
	// Attribute increments in exact Wh to avoid summing rounding errors:
	// each slot gets round(register at its last reading) - round(register
	// at the previous slot's last reading).
	var out []int64
	prev := math.Round(samples[0].wh)
	for _, s := range samples[1:] {
		k := int((s.t.Sub(start) + slot - 1) / slot) // ceil: a reading at a slot's end belongs to it
		k--
		if k < 0 {
			k = 0
		}
		for len(out) <= k {
			out = append(out, 0)
		}
		cur := math.Round(s.wh)
		out[k] += int64(cur - prev)
		prev = cur
	}
	return out, total, nil
}

// errClosed is returned by calls on a closed CSMS or connection.
var errClosed = errors.New("ocpp: connection closed")

// trimID shortens an id for messages.
func trimID(s string) string {
	if len(s) > 40 {
		return strings.ToValidUTF8(s[:40], "") + "..."
	}
	return s
}
