package ocpp

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/gridveil/gridveil/scenario"
)

// VehicleSchedule is one vehicle's coordinated schedule over its plug-in
// window: what the CSMS sends as its transaction's TxProfile.
type VehicleSchedule struct {
	Index       int       // position of the vehicle in the run (the n-th transaction gets vehicle n)
	EV          string    // the run's vehicle id; never sent to the station
	FirstSlot   int       // horizon slot the transaction starts in (the vehicle's arrival)
	SlotSeconds int       // slot length
	PowerW      []float64 // W per slot from FirstSlot to the vehicle's departure
}

// Schedules hands out vehicle schedules: the n-th transaction started at
// the CSMS (n from 0) gets Schedule(n). ok is false when there is none
// (more transactions than vehicles); the transaction then runs without a
// TxProfile.
type Schedules interface {
	Schedule(n int) (s VehicleSchedule, ok bool)
}

// SimRun is the schedules of a finished gridveil sim run: its
// instance.json (vehicles, their windows, the slot length) and
// solution.json (each vehicle's kW per slot).
type SimRun struct {
	inst  scenario.Instance
	sched map[string][]float64
}

// ReadSimRun reads DIR/instance.json and DIR/solution.json of a gridveil
// sim run.
func ReadSimRun(dir string) (*SimRun, error) {
	r := &SimRun{}
	data, err := os.ReadFile(filepath.Join(dir, "instance.json"))
	if err != nil {
		return nil, fmt.Errorf("ocpp: schedules: %w (give the output directory of a finished gridveil sim run)", err)
	}
	if err := json.Unmarshal(data, &r.inst); err != nil || r.inst.Schema != scenario.InstanceSchema {
		return nil, fmt.Errorf("ocpp: schedules: %s is not an instance.json of schema %s (err %v)", filepath.Join(dir, "instance.json"), scenario.InstanceSchema, err)
	}
	if r.inst.DT <= 0 || math.Abs(r.inst.DT*3600-math.Round(r.inst.DT*3600)) > 1e-6 {
		return nil, fmt.Errorf("ocpp: schedules: dt_hours = %v is not a whole number of seconds", r.inst.DT)
	}
	data, err = os.ReadFile(filepath.Join(dir, "solution.json"))
	if err != nil {
		return nil, fmt.Errorf("ocpp: schedules: %w (give the output directory of a finished gridveil sim run)", err)
	}
	var sol struct {
		Schema    string               `json:"schema"`
		Schedules map[string][]float64 `json:"schedules"`
	}
	if err := json.Unmarshal(data, &sol); err != nil || sol.Schema != scenario.SolutionSchema {
		return nil, fmt.Errorf("ocpp: schedules: %s is not a solution.json of schema %s (err %v)", filepath.Join(dir, "solution.json"), scenario.SolutionSchema, err)
	}
	if len(sol.Schedules) == 0 {
		return nil, fmt.Errorf("ocpp: schedules: %s has no schedules; run gridveil sim without --no-schedules", filepath.Join(dir, "solution.json"))
	}
	for i, ev := range r.inst.EVs {
		x, ok := sol.Schedules[ev.ID]
		if !ok || len(x) != r.inst.Slots {
			return nil, fmt.Errorf("ocpp: schedules: vehicle %d (%q) has no schedule of %d slots in solution.json", i, ev.ID, r.inst.Slots)
		}
		if ev.Arrive < 0 || ev.Depart > r.inst.Slots || ev.Arrive >= ev.Depart {
			return nil, fmt.Errorf("ocpp: schedules: vehicle %q: window [%d, %d) is not inside the %d slots", ev.ID, ev.Arrive, ev.Depart, r.inst.Slots)
		}
	}
	r.sched = sol.Schedules
	return r, nil
}

// Vehicles is the number of vehicles of the run.
func (r *SimRun) Vehicles() int { return len(r.inst.EVs) }

// Slots is the length of the run's horizon.
func (r *SimRun) Slots() int { return r.inst.Slots }

// Schedule implements Schedules: vehicle n of instance.json.
func (r *SimRun) Schedule(n int) (VehicleSchedule, bool) {
	if n < 0 || n >= len(r.inst.EVs) {
		return VehicleSchedule{}, false
	}
	ev := r.inst.EVs[n]
	x := r.sched[ev.ID]
	s := VehicleSchedule{Index: n, EV: ev.ID, FirstSlot: ev.Arrive, SlotSeconds: int(math.Round(r.inst.DT * 3600))}
	for t := ev.Arrive; t < ev.Depart; t++ {
		s.PowerW = append(s.PowerW, x[t]*1000)
	}
	return s, true
}

// LimitW is the charging-rate limit the profile carries for p W: OCPP
// accepts at most one decimal digit, so it is rounded to 0.1 W.
func LimitW(p float64) float64 {
	if p < 0 {
		p = 0 // OCPP 2.0.1 cannot carry discharge (docs/OCPP.md)
	}
	return math.Round(p*10) / 10
}

// TxProfile is the charging profile that carries s to transaction txID:
// purpose TxProfile with transactionId set (K01.FR.03), kind Relative (the
// schedule starts with the transaction), unit W, one period per slot with
// the first at startPeriod 0 (K01.FR.31). The profile id is fixed per
// transaction and the stack level is 0, so a re-plan with the same id
// replaces the profile (K01.FR.05) instead of stacking another.
func TxProfile(profileID int, txID string, s VehicleSchedule) ChargingProfile {
	periods := make([]ChargingSchedulePeriod, len(s.PowerW))
	for k, p := range s.PowerW {
		periods[k] = ChargingSchedulePeriod{StartPeriod: k * s.SlotSeconds, Limit: LimitW(p)}
	}
	return ChargingProfile{
		ID: profileID, StackLevel: 0, ChargingProfilePurpose: "TxProfile", ChargingProfileKind: "Relative", TransactionID: txID,
		ChargingSchedule: []ChargingSchedule{{ID: profileID, Duration: len(s.PowerW) * s.SlotSeconds, ChargingRateUnit: "W", ChargingSchedulePeriod: periods}},
	}
}

// TxProfileV2X is TxProfile for a station on OCPP 2.1, which can carry
// discharge: a slot of P >= 0 W is a period with operationMode ChargingOnly
// and limit P; a slot of P < 0 W (the vehicle feeds the grid) is a period
// with operationMode CentralSetpoint, setpoint P (negative: discharge, the
// EV follows it), dischargeLimit P (the EV may discharge no faster) and
// limit 0 (it may not charge meanwhile). Ids, stack level, kind and
// periods are TxProfile's, so a re-plan replaces the profile the same way.
func TxProfileV2X(profileID int, txID string, s VehicleSchedule) ChargingProfile {
	p := TxProfile(profileID, txID, s)
	periods := p.ChargingSchedule[0].ChargingSchedulePeriod
	for k, w := range s.PowerW {
		if d := DischargeW(w); d < 0 {
			periods[k].OperationMode, periods[k].Limit = "CentralSetpoint", 0
			periods[k].Setpoint, periods[k].DischargeLimit = &d, &d
		} else {
			periods[k].OperationMode = "ChargingOnly"
		}
	}
	return p
}

// DischargeW is the setpoint a discharge of p W (p < 0) is sent as: p
// rounded to 0.1 W; 0 for p >= 0, and for a discharge that rounds to 0.
func DischargeW(p float64) float64 {
	if d := math.Round(p*10) / 10; d < 0 {
		return d
	}
	return 0
}

// StationMaxProfile is a station-wide limit of w W from start (RFC 3339)
// on: purpose ChargingStationMaxProfile for evseId 0, one period.
func StationMaxProfile(profileID int, start string, w float64) ChargingProfile {
	return ChargingProfile{
		ID: profileID, StackLevel: 0, ChargingProfilePurpose: "ChargingStationMaxProfile", ChargingProfileKind: "Absolute",
		ChargingSchedule: []ChargingSchedule{{ID: profileID, StartSchedule: start, ChargingRateUnit: "W", ChargingSchedulePeriod: []ChargingSchedulePeriod{{StartPeriod: 0, Limit: LimitW(w)}}}},
	}
}
