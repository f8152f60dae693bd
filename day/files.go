package day

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"

	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/durable"
)

// Schemas of the files the parties leave (docs/PLATFORM.md).
const (
	SOResultSchema  = "gridveil/so-result/v1"
	SchedulesSchema = "gridveil/host-schedules/v1"
)

// SOResult is so.json, what the system operator ends the day with: its
// own view (the sums it was told), never a vehicle's schedule.
type SOResult struct {
	Schema     string         `json:"schema"`
	Scenario   string         `json:"scenario"`
	Seed       uint64         `json:"seed"`
	EVs        int            `json:"evs"`
	Iterations int            `json:"iterations"`
	Converged  bool           `json:"converged"`
	Gap        *float64       `json:"relative_gap"`
	Rounds     int            `json:"rounds"`
	Resumed    bool           `json:"resumed"`
	Resent     int            `json:"rounds_resent"`
	Refused    map[string]int `json:"refused"`
	Aggregate  []float64      `json:"so_view_aggregate_kw"`
	Mu         [][][]float64  `json:"duals"`
	// Dropped are the vehicles the SO dropped for silence, with the
	// schedule it kept as their fixed load (the only schedules so.json
	// holds: the SO counts them as load from then on).
	Dropped []DroppedEV `json:"dropped"`
	// BusSums are the per-bus sums the SO coordinated on last, by
	// "feeder/bus": with masking, all it ever learnt of the vehicles'
	// schedules.
	BusSums map[string][]float64 `json:"bus_sums_kw"`
	History []charging.Stats     `json:"-"`
}

// DroppedEV is a vehicle dropped from the coordination.
type DroppedEV struct {
	Feeder    int       `json:"feeder"`
	Bus       int       `json:"bus"`
	Sender    string    `json:"sender"`
	KeptRound int       `json:"kept_round"`
	Schedule  []float64 `json:"schedule_kw"`
}

// NewSOResult describes a finished coordinator for so.json.
func NewSOResult(pl *Plan, co *charging.Coordinator, resumed bool, resent int, refused map[string]int) *SOResult {
	op := co.Operator()
	r := &SOResult{Schema: SOResultSchema, Scenario: pl.Meta.Scenario, Seed: pl.Meta.Seed, EVs: len(pl.Problem.EVs),
		Iterations: op.Iteration(), Converged: op.Converged(), Rounds: co.Round(), Resumed: resumed, Resent: resent,
		Refused: refused, Aggregate: op.Aggregate(), Mu: op.Mu(), History: op.History()}
	if g := op.Gap(); !math.IsNaN(g) {
		r.Gap = &g
	}
	r.BusSums = map[string][]float64{}
	for g, b := range op.Buses() {
		f := &pl.Problem.Feeders[b.Feeder]
		r.BusSums[f.Name+"/"+f.Buses[b.Bus].Name] = append([]float64(nil), op.Sums()[g]...)
	}
	r.Dropped = []DroppedEV{}
	for _, d := range co.State().Dropped {
		b := op.Buses()[d.Bus]
		r.Dropped = append(r.Dropped, DroppedEV{Feeder: b.Feeder, Bus: b.Bus, Sender: d.Sender, KeptRound: d.Kept, Schedule: d.Schedule})
	}
	return r
}

// HostSchedules is a host's schedules file: each hosted vehicle's final
// schedule, by its index in the plan. In a deployment each vehicle keeps
// its own; a run's files gather them as the day's ground truth.
type HostSchedules struct {
	Schema    string      `json:"schema"`
	Host      int         `json:"host"`
	Hosts     int         `json:"hosts"`
	Index     []int       `json:"ev_index"`
	IDs       []string    `json:"ev_ids"`
	Schedules [][]float64 `json:"schedules_kw"`
}

// WriteJSONFile writes v to path durably (package durable), so that a
// reader never sees half a file.
func WriteJSONFile(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return durable.WriteFile(path, append(data, '\n'), 0o644)
}

// ReadJSONFile reads a file written by WriteJSONFile.
func ReadJSONFile(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Assemble builds the day's record from what the parties left: the
// vehicles' own schedules and the SO's multipliers, convergence and view
// of the aggregate (sol), and the grid the schedules make on the true
// problem (g, charging.Evaluate), which is what the files report as the
// grid. Every vehicle of the plan must be in exactly one host file.
func Assemble(pl *Plan, so *SOResult, hosts []*HostSchedules) (*charging.Solution, *charging.GridState, error) {
	p := pl.Problem
	T := p.Slots
	sched := make([][]float64, len(p.EVs))
	for _, h := range hosts {
		if len(h.Index) != len(h.Schedules) {
			return nil, nil, fmt.Errorf("host %d's file lists %d vehicles and %d schedules", h.Host, len(h.Index), len(h.Schedules))
		}
		for k, i := range h.Index {
			if i < 0 || i >= len(p.EVs) || len(h.Schedules[k]) != T {
				return nil, nil, fmt.Errorf("host %d's file has a schedule for vehicle %d of %d slots; the plan has %d vehicles of %d slots", h.Host, i, len(h.Schedules[k]), len(p.EVs), T)
			}
			if sched[i] != nil {
				return nil, nil, fmt.Errorf("vehicle %d is in two hosts' files", i)
			}
			sched[i] = h.Schedules[k]
		}
	}
	// A dropped vehicle whose host died has no host file: its schedule
	// is the one the SO kept.
	for _, d := range so.Dropped {
		i := pl.Index(d.Sender)
		if i < 0 || len(d.Schedule) != T {
			return nil, nil, fmt.Errorf("so.json drops %q, which is not a vehicle of the plan", d.Sender)
		}
		if sched[i] == nil {
			sched[i] = d.Schedule
		}
	}
	for i := range sched {
		if sched[i] == nil {
			return nil, nil, fmt.Errorf("no host reported vehicle %d (%s): a host process did not finish", i, p.EVs[i].ID)
		}
	}
	if len(so.Mu) != len(p.Feeders) || len(so.Aggregate) != T {
		return nil, nil, errors.New("so.json does not match the plan's feeders and horizon")
	}
	g, err := charging.Evaluate(p, sched)
	if err != nil {
		return nil, nil, err
	}
	sol := &charging.Solution{Iterations: so.Iterations, Converged: so.Converged, Gap: math.NaN(), Schedules: sched, Mu: so.Mu,
		History: so.History, Aggregate: so.Aggregate, Objective: charging.Objective(so.Aggregate)}
	if so.Gap != nil {
		sol.Gap = *so.Gap
	}
	return sol, g, nil
}

// WriteText writes a small text file (an address, a pid) durably.
func WriteText(path, text string) error { return durable.WriteFile(path, []byte(text), 0o644) }
