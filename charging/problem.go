package charging

import (
	"errors"
	"fmt"
	"math"

	"github.com/gridveil/gridveil/grid"
)

// EV is one vehicle's private data: its local set X_i of docs/ARCHITECTURE.md C2.
// It is plugged in for Arrive <= t < Depart. A charging-only vehicle
// (Capacity 0) must take Energy kWh into its battery, drawing
// Energy / Efficiency from the grid. A vehicle with a battery model
// (Capacity > 0, see battery.go) instead keeps its state of charge within
// [SOCMin, Capacity] in every slot from SOCArrive, holds at least SOCDepart
// at departure, and may discharge up to PDis kW.
type EV struct {
	ID         string
	Feeder     int     // index into Problem.Feeders
	Bus        int     // bus index within the feeder
	PMax       float64 // charger limit, kW
	Energy     float64 // energy to store, kWh (charging-only vehicles)
	Efficiency float64 // charging efficiency, (0, 1]
	Arrive     int     // first plugged-in slot
	Depart     int     // first slot after unplugging

	Capacity      float64 // battery capacity, kWh; 0 = charging-only vehicle
	SOCArrive     float64 // state of charge at arrival, kWh
	SOCMin        float64 // the owner's floor, kWh, in every slot
	SOCDepart     float64 // state of charge needed at departure, kWh
	PDis          float64 // discharge limit, kW (grid side); 0 = charges only
	DisEfficiency float64 // discharge efficiency, (0, 1]
	// Degradation is the cost of battery wear per kW-slot of throughput
	// (charge plus discharge), in the units of the load price A(t), kW: a
	// vehicle shifts energy only when the load it shaves exceeds the load
	// it adds by more than the wear.
	Degradation float64
}

// Feeder is a feeder together with its baseline (non-EV) load.
type Feeder struct {
	grid.Feeder
	BaseP [][]float64 // active baseline, kW, [bus][slot]
	BaseQ [][]float64 // reactive baseline, kvar, [bus][slot]
}

// Problem is a valley-filling instance: every feeder of a region, its
// vehicles and the voltage limit. The objective is the region's total load:
// the system operator flattens D(t) + sum_i x_i(t) over all its feeders.
type Problem struct {
	Slots   int
	DT      float64 // slot length, hours
	VMin    float64 // lower voltage limit, pu
	Feeders []Feeder
	EVs     []EV
}

// ErrInvalidProblem is wrapped by every error Validate returns.
var ErrInvalidProblem = errors.New("invalid charging problem")

// Need returns the grid-side energy the EV must draw, in kW-slots: the sum
// of x(t) over its window that meets its demand, E / (eta * dt).
func (ev *EV) Need(dt float64) float64 { return ev.Energy / (ev.Efficiency * dt) }

// Validate checks the problem, naming the first offending item and what
// would fix it. A valid problem has a feasible local set for every EV and a
// baseline that alone respects the voltage limit; the coupled problem can
// still be infeasible if the vehicles together cannot fit under the limit,
// which the solver reports.
func (p *Problem) Validate() error {
	if p.Slots <= 0 {
		return fmt.Errorf("%w: slots = %d; the horizon needs at least one slot", ErrInvalidProblem, p.Slots)
	}
	if !(p.DT > 0) || math.IsInf(p.DT, 0) {
		return fmt.Errorf("%w: slot length %v h must be positive", ErrInvalidProblem, p.DT)
	}
	if !(p.VMin > 0 && p.VMin < 1.5) {
		return fmt.Errorf("%w: vmin = %v pu is outside (0, 1.5)", ErrInvalidProblem, p.VMin)
	}
	if len(p.Feeders) == 0 {
		return fmt.Errorf("%w: no feeders", ErrInvalidProblem)
	}
	for fi := range p.Feeders {
		f := &p.Feeders[fi]
		if err := f.Feeder.Validate(); err != nil {
			return fmt.Errorf("%w: feeder %d: %w", ErrInvalidProblem, fi, err)
		}
		if len(f.BaseP) != len(f.Buses) || len(f.BaseQ) != len(f.Buses) {
			return fmt.Errorf("%w: feeder %q has %d buses but baselines for %d (kW) and %d (kvar)", ErrInvalidProblem, f.Name, len(f.Buses), len(f.BaseP), len(f.BaseQ))
		}
		for b := range f.Buses {
			if len(f.BaseP[b]) != p.Slots || len(f.BaseQ[b]) != p.Slots {
				return fmt.Errorf("%w: feeder %q bus %q: baseline has %d (kW) and %d (kvar) values; the horizon has %d slots", ErrInvalidProblem, f.Name, f.Buses[b].Name, len(f.BaseP[b]), len(f.BaseQ[b]), p.Slots)
			}
			for t := 0; t < p.Slots; t++ {
				if bad(f.BaseP[b][t]) || bad(f.BaseQ[b][t]) {
					return fmt.Errorf("%w: feeder %q bus %q slot %d: baseline is not a finite number", ErrInvalidProblem, f.Name, f.Buses[b].Name, t)
				}
			}
		}
		if v, b, t := baselineMinVoltage(f, p.Slots); v < p.VMin {
			return fmt.Errorf("%w: feeder %q: the baseline alone drives bus %q to %.4f pu in slot %d, below vmin %.4f; raise the slack voltage v0 or lower the baseline", ErrInvalidProblem, f.Name, f.Buses[b].Name, v, t, p.VMin)
		}
	}
	ids := make(map[string]int, len(p.EVs))
	for i := range p.EVs {
		ev := &p.EVs[i]
		name := ev.ID
		if name == "" {
			return fmt.Errorf("%w: EV %d has no id", ErrInvalidProblem, i)
		}
		if j, dup := ids[name]; dup {
			return fmt.Errorf("%w: EV id %q used twice (EVs %d and %d)", ErrInvalidProblem, name, j, i)
		}
		ids[name] = i
		if ev.Feeder < 0 || ev.Feeder >= len(p.Feeders) {
			return fmt.Errorf("%w: EV %q: feeder index %d does not exist (0..%d)", ErrInvalidProblem, name, ev.Feeder, len(p.Feeders)-1)
		}
		f := &p.Feeders[ev.Feeder]
		if ev.Bus <= 0 || ev.Bus >= len(f.Buses) {
			return fmt.Errorf("%w: EV %q: bus index %d is not a load bus of feeder %q (1..%d)", ErrInvalidProblem, name, ev.Bus, f.Name, len(f.Buses)-1)
		}
		if !(ev.PMax > 0) || math.IsInf(ev.PMax, 0) {
			return fmt.Errorf("%w: EV %q: pmax %v kW must be positive", ErrInvalidProblem, name, ev.PMax)
		}
		if !(ev.Efficiency > 0 && ev.Efficiency <= 1) {
			return fmt.Errorf("%w: EV %q: efficiency %v must be in (0, 1]", ErrInvalidProblem, name, ev.Efficiency)
		}
		if !(ev.Energy >= 0) || math.IsInf(ev.Energy, 0) {
			return fmt.Errorf("%w: EV %q: energy demand %v kWh must be finite and >= 0", ErrInvalidProblem, name, ev.Energy)
		}
		if ev.Arrive < 0 || ev.Depart > p.Slots || ev.Arrive >= ev.Depart {
			return fmt.Errorf("%w: EV %q: plug-in window [%d, %d) must satisfy 0 <= arrive < depart <= %d", ErrInvalidProblem, name, ev.Arrive, ev.Depart, p.Slots)
		}
		if ev.Battery() || ev.PDis != 0 {
			if err := ev.validateBattery(p.DT); err != nil {
				return err
			}
			continue
		}
		most := ev.PMax * float64(ev.Depart-ev.Arrive) * ev.Efficiency * p.DT
		if ev.Energy > most*(1+1e-12) {
			return fmt.Errorf("%w: EV %q: demand %.3f kWh cannot be met in its window: %d slots at %.3f kW and efficiency %.3f store at most %.3f kWh; lower the demand, widen the window or raise pmax", ErrInvalidProblem, name, ev.Energy, ev.Depart-ev.Arrive, ev.PMax, ev.Efficiency, most)
		}
	}
	return nil
}

func bad(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }

// baselineMinVoltage returns the lowest baseline-only voltage of a feeder
// and where it occurs.
func baselineMinVoltage(f *Feeder, slots int) (v float64, bus, slot int) {
	n := len(f.Buses)
	pt, qt := make([]float64, n), make([]float64, n)
	v2, scratch := make([]float64, n), make([]float64, n)
	v = math.Inf(1)
	for t := 0; t < slots; t++ {
		for b := 0; b < n; b++ {
			pt[b], qt[b] = f.BaseP[b][t], f.BaseQ[b][t]
		}
		f.VoltageSquared(pt, qt, v2, scratch)
		for b := 1; b < n; b++ {
			if s := math.Sqrt(math.Max(v2[b], 0)); s < v {
				v, bus, slot = s, b, t
			}
		}
	}
	return v, bus, slot
}

// Baseline returns D(t), the region's total baseline active load, kW.
func (p *Problem) Baseline() []float64 { return regionBaseline(p.Feeders, p.Slots) }
