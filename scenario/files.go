package scenario

import (
	"encoding/json"
	"fmt"
	"io"
	"math"

	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/grid"
)

// Schema versions of the files this package writes (docs/FORMATS.md).
const (
	InstanceSchema = "gridveil/instance/v1"
	SolutionSchema = "gridveil/solution/v1"
)

// Instance is instance.json: everything needed to rebuild a charging
// problem without gridveil.
type Instance struct {
	Schema   string       `json:"schema"`
	Scenario string       `json:"scenario"`
	Seed     uint64       `json:"seed"`
	SBase    float64      `json:"s_base_kva"`
	Slots    int          `json:"slots"`
	DT       float64      `json:"dt_hours"`
	Start    string       `json:"start"`
	VMin     float64      `json:"vmin_pu"`
	Feeders  []InstFeeder `json:"feeders"`
	EVs      []InstEV     `json:"evs"`
}

// InstFeeder is one feeder of an instance.
type InstFeeder struct {
	Name  string    `json:"name"`
	Slack string    `json:"slack"`
	V0    float64   `json:"v0_pu"`
	Buses []InstBus `json:"buses"`
}

// InstBus is a bus, the line from its parent, and its baseline load.
type InstBus struct {
	Name     string    `json:"name"`
	Parent   string    `json:"parent"` // "" for the slack bus
	R        float64   `json:"r_pu"`
	X        float64   `json:"x_pu"`
	BaseKW   []float64 `json:"baseline_kw"`
	BaseKVar []float64 `json:"baseline_kvar"`
}

// InstEV is one vehicle; it is plugged in for arrive_slot <= t < depart_slot.
type InstEV struct {
	ID         string  `json:"id"`
	Feeder     string  `json:"feeder"`
	Bus        string  `json:"bus"`
	PMax       float64 `json:"pmax_kw"`
	Energy     float64 `json:"energy_kwh"`
	Efficiency float64 `json:"efficiency"`
	Arrive     int     `json:"arrive_slot"`
	Depart     int     `json:"depart_slot"`
	// The battery model (V2G); all absent for a charging-only vehicle, so
	// files without them load as before.
	Capacity      float64 `json:"capacity_kwh,omitempty"`
	SOCArrive     float64 `json:"soc_arrive_kwh,omitempty"`
	SOCMin        float64 `json:"soc_min_kwh,omitempty"`
	SOCDepart     float64 `json:"soc_depart_kwh,omitempty"`
	PDis          float64 `json:"pdis_kw,omitempty"`
	DisEfficiency float64 `json:"discharge_efficiency,omitempty"`
	Degradation   float64 `json:"degradation_kw,omitempty"`
}

// NewInstance describes p for instance.json.
func NewInstance(p *charging.Problem, m *Meta) *Instance {
	in := &Instance{Schema: InstanceSchema, Scenario: m.Scenario, Seed: m.Seed, Slots: p.Slots, DT: p.DT, Start: m.Start, VMin: p.VMin}
	if len(p.Feeders) > 0 {
		in.SBase = p.Feeders[0].SBase
	}
	for _, f := range p.Feeders {
		jf := InstFeeder{Name: f.Name, Slack: f.Buses[0].Name, V0: f.V0}
		for b, bus := range f.Buses {
			parent := ""
			if bus.Parent >= 0 {
				parent = f.Buses[bus.Parent].Name
			}
			jf.Buses = append(jf.Buses, InstBus{Name: bus.Name, Parent: parent, R: bus.R, X: bus.X, BaseKW: f.BaseP[b], BaseKVar: f.BaseQ[b]})
		}
		in.Feeders = append(in.Feeders, jf)
	}
	in.EVs = make([]InstEV, len(p.EVs))
	for i, ev := range p.EVs {
		f := &p.Feeders[ev.Feeder]
		in.EVs[i] = InstEV{ID: ev.ID, Feeder: f.Name, Bus: f.Buses[ev.Bus].Name, PMax: ev.PMax, Energy: ev.Energy, Efficiency: ev.Efficiency, Arrive: ev.Arrive, Depart: ev.Depart,
			Capacity: ev.Capacity, SOCArrive: ev.SOCArrive, SOCMin: ev.SOCMin, SOCDepart: ev.SOCDepart, PDis: ev.PDis, DisEfficiency: ev.DisEfficiency, Degradation: ev.Degradation}
	}
	return in
}

// ReadInstance decodes instance.json and rebuilds its problem, checking
// every reference: a bad file gives an error that names the item.
func ReadInstance(r io.Reader) (*charging.Problem, *Meta, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var in Instance
	if err := dec.Decode(&in); err != nil {
		return nil, nil, fmt.Errorf("%w: instance file is not valid JSON of schema %s: %w", ErrScenario, InstanceSchema, err)
	}
	if in.Schema != InstanceSchema {
		return nil, nil, fmt.Errorf("%w: instance schema is %q; this gridveil reads %q", ErrScenario, in.Schema, InstanceSchema)
	}
	return in.Problem()
}

// Problem rebuilds the charging problem an instance describes.
func (in *Instance) Problem() (*charging.Problem, *Meta, error) {
	if in.Slots <= 0 || in.Slots > 1_000_000 {
		return nil, nil, fmt.Errorf("%w: slots = %d must be in 1..1000000", ErrScenario, in.Slots)
	}
	p := &charging.Problem{Slots: in.Slots, DT: in.DT, VMin: in.VMin}
	feederIdx := map[string]int{}
	for fi, jf := range in.Feeders {
		if _, dup := feederIdx[jf.Name]; dup {
			return nil, nil, fmt.Errorf("%w: feeder name %q used twice", ErrScenario, jf.Name)
		}
		feederIdx[jf.Name] = fi
		f := charging.Feeder{Feeder: grid.Feeder{Name: jf.Name, V0: jf.V0, SBase: in.SBase}}
		busIdx := map[string]int{}
		for b, jb := range jf.Buses {
			parent := -1
			if b == 0 {
				if jb.Parent != "" || jb.Name != jf.Slack {
					return nil, nil, fmt.Errorf("%w: feeder %q: the first bus must be the slack bus %q with no parent", ErrScenario, jf.Name, jf.Slack)
				}
			} else {
				pi, ok := busIdx[jb.Parent]
				if !ok {
					return nil, nil, fmt.Errorf("%w: feeder %q bus %q: parent %q is not listed before it", ErrScenario, jf.Name, jb.Name, jb.Parent)
				}
				parent = pi
			}
			busIdx[jb.Name] = b
			f.Buses = append(f.Buses, grid.Bus{Name: jb.Name, Parent: parent, R: jb.R, X: jb.X})
			f.BaseP = append(f.BaseP, jb.BaseKW)
			f.BaseQ = append(f.BaseQ, jb.BaseKVar)
		}
		p.Feeders = append(p.Feeders, f)
	}
	for i, je := range in.EVs {
		fi, ok := feederIdx[je.Feeder]
		if !ok {
			return nil, nil, fmt.Errorf("%w: evs[%d] (%q): unknown feeder %q", ErrScenario, i, je.ID, je.Feeder)
		}
		b := p.Feeders[fi].BusIndex(je.Bus)
		if b < 0 {
			return nil, nil, fmt.Errorf("%w: evs[%d] (%q): unknown bus %q on feeder %q; use one of %s", ErrScenario, i, je.ID, je.Bus, je.Feeder, loadBusNames(&p.Feeders[fi].Feeder))
		}
		p.EVs = append(p.EVs, charging.EV{ID: je.ID, Feeder: fi, Bus: b, PMax: je.PMax, Energy: je.Energy, Efficiency: je.Efficiency, Arrive: je.Arrive, Depart: je.Depart,
			Capacity: je.Capacity, SOCArrive: je.SOCArrive, SOCMin: je.SOCMin, SOCDepart: je.SOCDepart, PDis: je.PDis, DisEfficiency: je.DisEfficiency, Degradation: je.Degradation})
	}
	if err := p.Validate(); err != nil {
		return nil, nil, err
	}
	start := in.Start
	if _, err := clock(start); err != nil {
		start = "00:00"
	}
	return p, &Meta{Scenario: in.Scenario, Seed: in.Seed, Start: start}, nil
}

// Solution is solution.json. It holds only results that the seed
// determines; timings go to the terminal summary, so that the same seed
// gives the same file byte for byte.
//
// Baseline, Aggregate, Objective, Voltages and the minimum are the grid's
// true state under the schedules (charging.Evaluate on the true problem),
// whatever the system operator believed; SOView holds what it believed
// when that can differ (noisy sums, an estimated baseline).
type Solution struct {
	Schema       string               `json:"schema"`
	Scenario     string               `json:"scenario"`
	Seed         uint64               `json:"seed"`
	Privacy      string               `json:"privacy"`
	Iterations   int                  `json:"iterations"`
	Converged    bool                 `json:"converged"`
	Objective    float64              `json:"objective"`
	Gap          *float64             `json:"relative_gap"`
	Baseline     []float64            `json:"baseline_kw"`
	Aggregate    []float64            `json:"aggregate_kw"`
	EVEnergy     float64              `json:"ev_grid_energy_kwh"`
	Schedules    map[string][]float64 `json:"schedules,omitempty"`
	Voltages     map[string][]float64 `json:"voltages_pu"`
	Duals        map[string][]float64 `json:"duals"`
	MinVoltage   float64              `json:"min_voltage_pu"`
	MinAt        string               `json:"min_voltage_at"`
	Violations   int                  `json:"violations"`
	MaxViolation float64              `json:"max_violation_pu"`
	SOView       *SOView              `json:"so_view,omitempty"`
	// V2G is present when the problem has battery vehicles.
	V2G *V2GResult `json:"v2g,omitempty"`
}

// V2GResult is what the battery vehicles did: each one's state of charge
// after every slot, how far the relaxation is from exact, and, when the
// run also solved the same day with discharging switched off, what
// discharging bought.
type V2GResult struct {
	Bidirectional int                  `json:"bidirectional"` // vehicles allowed to discharge
	Batteries     int                  `json:"batteries"`     // vehicles with a battery model
	SOC           map[string][]float64 `json:"soc_kwh,omitempty"`
	Simultaneous  float64              `json:"simultaneous_kw"` // largest charge-and-discharge in one slot; 0 = exact
	Wear          float64              `json:"wear"`
	DischargedKWh float64              `json:"discharged_kwh"` // grid side
	PeakBaseline  float64              `json:"peak_baseline_kw"`
	Peak          float64              `json:"peak_kw"`
	ChargingOnly  *ChargingOnly        `json:"charging_only,omitempty"`
}

// ChargingOnly is the same day solved with every pdis set to 0.
type ChargingOnly struct {
	Iterations int       `json:"iterations"`
	Converged  bool      `json:"converged"`
	Objective  float64   `json:"objective"`
	Peak       float64   `json:"peak_kw"`
	Aggregate  []float64 `json:"aggregate_kw"`
}

// NewV2GResult describes the battery vehicles of a run (nil if there are
// none); g is the grid's state under sol, only is the charging-only
// solve's grid state or nil.
func NewV2GResult(p *charging.Problem, sol *charging.Solution, g *charging.GridState, only *charging.Solution, og *charging.GridState, withSOC bool) *V2GResult {
	r := &V2GResult{Simultaneous: sol.Simultaneous, Wear: sol.Wear}
	for i, ev := range p.EVs {
		if !ev.Battery() {
			continue
		}
		r.Batteries++
		if ev.PDis > 0 {
			r.Bidirectional++
		}
		for _, x := range sol.Schedules[i] {
			r.DischargedKWh += max(-x, 0) * p.DT
		}
		if withSOC && sol.SOC != nil {
			if r.SOC == nil {
				r.SOC = map[string][]float64{}
			}
			r.SOC[ev.ID] = sol.SOC[i]
		}
	}
	if r.Batteries == 0 {
		return nil
	}
	_, r.PeakBaseline = minMax(p.Baseline())
	_, r.Peak = minMax(g.Aggregate)
	if only != nil {
		_, pk := minMax(og.Aggregate)
		r.ChargingOnly = &ChargingOnly{Iterations: only.Iterations, Converged: only.Converged, Objective: og.Objective, Peak: pk, Aggregate: og.Aggregate}
	}
	return r
}

func minMax(a []float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, v := range a {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	return lo, hi
}

// SOView is what the system operator believed at the end of a run whose
// view differs from the grid by construction: the aggregate and voltages
// it computed from the sums it received, on the baseline it used.
type SOView struct {
	Why        string               `json:"why"`
	Baseline   []float64            `json:"baseline_kw"`
	Aggregate  []float64            `json:"aggregate_kw"`
	Objective  float64              `json:"objective"`
	Voltages   map[string][]float64 `json:"voltages_pu"`
	MinVoltage float64              `json:"min_voltage_pu"`
	MinAt      string               `json:"min_voltage_at"`
}

// NewSolution describes a run for solution.json: the solver's record
// (iterations, convergence, gap, duals, schedules) from sol and the grid's
// state from g, which must be charging.Evaluate of sol.Schedules on p, the
// true problem. Schedules are left out when withSchedules is false (very
// large runs).
func NewSolution(p *charging.Problem, m *Meta, sol *charging.Solution, g *charging.GridState, privacy string, withSchedules bool) *Solution {
	out := &Solution{
		Schema: SolutionSchema, Scenario: m.Scenario, Seed: m.Seed, Privacy: privacy,
		Iterations: sol.Iterations, Converged: sol.Converged, Objective: g.Objective,
		Baseline: p.Baseline(), Aggregate: g.Aggregate, EVEnergy: g.EVEnergy,
		Voltages: map[string][]float64{}, Duals: map[string][]float64{},
		Violations: g.Violations, MaxViolation: g.MaxViolation,
	}
	if !math.IsNaN(sol.Gap) {
		gap := sol.Gap
		out.Gap = &gap
	}
	if withSchedules {
		out.Schedules = make(map[string][]float64, len(p.EVs))
		for i, ev := range p.EVs {
			out.Schedules[ev.ID] = sol.Schedules[i]
		}
	}
	for fi, f := range p.Feeders {
		for b := 1; b < len(f.Buses); b++ {
			key := f.Name + "/" + f.Buses[b].Name
			out.Voltages[key] = g.Voltage[fi][b]
			out.Duals[key] = sol.Mu[fi][b]
		}
	}
	if len(p.Feeders) > 0 && !math.IsInf(g.MinVoltage, 1) {
		f := &p.Feeders[g.MinFeeder]
		out.MinVoltage = g.MinVoltage
		out.MinAt = fmt.Sprintf("%s/%s slot %d", f.Name, f.Buses[g.MinBus].Name, g.MinSlot)
	}
	return out
}

// NewSOView describes what the SO believed: sol's aggregate and voltages,
// which the solver computed from the sums the SO received, on so, the
// problem the SO solved (with --baseline ldp, its estimated baselines).
// why says what makes the view differ from the grid.
func NewSOView(so *charging.Problem, sol *charging.Solution, why string) *SOView {
	v := &SOView{Why: why, Baseline: so.Baseline(), Aggregate: sol.Aggregate, Objective: sol.Objective, Voltages: map[string][]float64{}, MinVoltage: math.Inf(1)}
	for fi, f := range so.Feeders {
		for b := 1; b < len(f.Buses); b++ {
			key := f.Name + "/" + f.Buses[b].Name
			v.Voltages[key] = sol.Voltage[fi][b]
			for t, u := range sol.Voltage[fi][b] {
				if u < v.MinVoltage {
					v.MinVoltage = u
					v.MinAt = fmt.Sprintf("%s slot %d", key, t)
				}
			}
		}
	}
	return v
}

// WriteJSON writes v as compact JSON and a newline: series of thousands of
// numbers stay one line each, and jq makes it readable.
func WriteJSON(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}
