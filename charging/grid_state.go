package charging

import (
	"fmt"
	"math"
)

// GridState is the physical state of a region under a set of schedules: the
// load and voltages the feeders actually carry. It is what a run's files
// must report, because a Solution holds the system operator's view, which a
// noisy aggregation mechanism (obfuscation, DP) or an estimated baseline
// (LDP) makes differ from the grid.
type GridState struct {
	Aggregate []float64     // D(t) + sum_i x_i(t) with the true baseline, kW
	Objective float64       // 1/2 sum_t Aggregate(t)^2, kW^2
	Voltage   [][][]float64 // LinDistFlow voltage [feeder][bus][slot], pu; bus 0 is the slack at V0
	EVEnergy  float64       // sum_i sum_t x_i(t) dt: what the vehicles draw from the grid, kWh

	// MinVoltage is the lowest voltage of any non-slack bus, at
	// (MinFeeder, MinBus, MinSlot).
	MinVoltage                 float64
	MinFeeder, MinBus, MinSlot int
	// Violations counts the bus-slots whose voltage is below VMin by more
	// than ViolationTol; MaxViolation is the largest VMin - V (<= 0 when
	// every limit holds).
	Violations   int
	MaxViolation float64
}

// ViolationTol is how far below vmin a voltage may sit before Evaluate
// counts it as a violation: the solver's own tolerance (Options.VoltTol
// default), so that a converged run's binding limits are not reported as
// violated by rounding.
const ViolationTol = 1e-6

// Evaluate computes the grid state that schedules (indexed like p.EVs, one
// value per slot each, kW) produce on p's feeders and baselines. It uses
// nothing but p and the schedules, so give it the true problem to learn
// what the grid did, whatever the SO believed when it computed them. It
// returns an error naming the vehicle if a schedule does not fit p.
func Evaluate(p *Problem, schedules [][]float64) (*GridState, error) {
	if len(schedules) != len(p.EVs) {
		return nil, fmt.Errorf("evaluating the grid: %d schedules for %d EVs; give one schedule per vehicle of the problem", len(schedules), len(p.EVs))
	}
	T := p.Slots
	// Per-bus EV load, [feeder][bus][slot], summed in EV order so that the
	// result is one fixed floating-point sum whatever produced the
	// schedules.
	evLoad := make([][][]float64, len(p.Feeders))
	for fi := range p.Feeders {
		evLoad[fi] = make([][]float64, len(p.Feeders[fi].Buses))
	}
	g := &GridState{Aggregate: p.Baseline(), MinVoltage: math.Inf(1), MaxViolation: math.Inf(-1)}
	for i, x := range schedules {
		ev := &p.EVs[i]
		if len(x) != T {
			return nil, fmt.Errorf("evaluating the grid: EV %q has a schedule of %d slots; the horizon has %d", ev.ID, len(x), T)
		}
		if ev.Feeder < 0 || ev.Feeder >= len(p.Feeders) || ev.Bus <= 0 || ev.Bus >= len(p.Feeders[ev.Feeder].Buses) {
			return nil, fmt.Errorf("evaluating the grid: EV %q is at feeder %d bus %d, which the problem does not have; validate the problem first", ev.ID, ev.Feeder, ev.Bus)
		}
		row := evLoad[ev.Feeder][ev.Bus]
		if row == nil {
			row = make([]float64, T)
			evLoad[ev.Feeder][ev.Bus] = row
		}
		for t, v := range x {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("evaluating the grid: EV %q draws %v kW in slot %d; schedules must be finite", ev.ID, v, t)
			}
			row[t] += v
			g.Aggregate[t] += v
			g.EVEnergy += v * p.DT
		}
	}
	g.Objective = Objective(g.Aggregate)
	g.Voltage = make([][][]float64, len(p.Feeders))
	for fi := range p.Feeders {
		f := &p.Feeders[fi]
		n := len(f.Buses)
		pt, qt := make([]float64, n), make([]float64, n)
		v2, scratch := make([]float64, n), make([]float64, n)
		volt := make([][]float64, n)
		for b := range volt {
			volt[b] = make([]float64, T)
		}
		for t := 0; t < T; t++ {
			for b := 0; b < n; b++ {
				pt[b], qt[b] = f.BaseP[b][t], f.BaseQ[b][t]
				if row := evLoad[fi][b]; row != nil {
					pt[b] += row[t]
				}
			}
			f.VoltageSquared(pt, qt, v2, scratch)
			for b := 0; b < n; b++ {
				v := math.Sqrt(max(v2[b], 0))
				volt[b][t] = v
				if b == 0 {
					continue
				}
				if v < g.MinVoltage {
					g.MinVoltage, g.MinFeeder, g.MinBus, g.MinSlot = v, fi, b, t
				}
				g.MaxViolation = max(g.MaxViolation, p.VMin-v)
				if v < p.VMin-ViolationTol {
					g.Violations++
				}
			}
		}
		g.Voltage[fi] = volt
	}
	return g, nil
}
