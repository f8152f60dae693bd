package runfile

import (
	"fmt"
	"math"

	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/scenario"
)

// ConvergenceSchema is the schema of convergence.json (docs/FORMATS.md).
const ConvergenceSchema = "gridveil/convergence/v1"

// Sources of a convergence history.
const (
	// ConvergenceFromSolver: the in-process solve's own record of every
	// iteration (gridveil sim).
	ConvergenceFromSolver = "solver"
	// ConvergenceFromProgress: the SO's progress messages on
	// gridveil.v1.coord.progress as a subscriber received them
	// (gridveil up). NATS delivers at most once, so a message can be
	// missing; Missing lists the iterations that are.
	ConvergenceFromProgress = "so-progress"
)

// Convergence is convergence.json: a finished coordination's history,
// one point per iteration, so that a finished run can be plotted and
// audited as a live one is followed.
type Convergence struct {
	Schema   string `json:"schema"`
	Scenario string `json:"scenario"`
	Seed     uint64 `json:"seed"`
	Privacy  string `json:"privacy"`
	Source   string `json:"source"`
	// Iterations is the run's last iteration (solution.json's);
	// Converged is whether its duality gap certified the optimum.
	Iterations int  `json:"iterations"`
	Converged  bool `json:"converged"`
	// Missing are the iterations from 1 to Iterations the history has no
	// point for (always empty from the solver).
	Missing []int              `json:"missing"`
	History []ConvergencePoint `json:"history"`
}

// ConvergencePoint is one completed iteration, as the SO saw it.
type ConvergencePoint struct {
	Iter int `json:"iteration"`
	// Objective is 1/2 sum_t A(t)^2 of the SO's aggregate, kW^2.
	Objective float64 `json:"objective"`
	// Change is max_t |A_k(t) - A_{k-1}(t)|, kW.
	Change float64 `json:"change_kw"`
	// Violation is the largest vmin - V_j(t), pu (<= 0 when feasible).
	Violation float64 `json:"violation_pu"`
	// Gap is the relative duality gap where a bound round certified the
	// iteration, null elsewhere.
	Gap *float64 `json:"relative_gap"`
}

// PointsFromStats turns the solver's history into points (a NaN gap, not
// computed at that iteration, becomes null).
func PointsFromStats(hist []charging.Stats) []ConvergencePoint {
	out := make([]ConvergencePoint, len(hist))
	for i, st := range hist {
		out[i] = ConvergencePoint{Iter: st.Iter, Objective: st.Objective, Change: st.Change, Violation: st.Violation}
		if !math.IsNaN(st.Gap) {
			g := st.Gap
			out[i].Gap = &g
		}
	}
	return out
}

// NewConvergence builds convergence.json of the run meta describes,
// coordinated under the privacy mechanism privacy, from points in rising iteration
// order. It refuses what JSON cannot hold or a reader could not trust: a
// non-finite figure, iterations out of order or repeated, or a point past
// the run's last iteration.
func NewConvergence(meta *scenario.Meta, privacy, source string, iterations int, converged bool, points []ConvergencePoint) (*Convergence, error) {
	c := &Convergence{Schema: ConvergenceSchema, Scenario: meta.Scenario, Seed: meta.Seed, Privacy: privacy, Source: source,
		Iterations: iterations, Converged: converged, Missing: []int{}, History: points}
	if c.History == nil {
		c.History = []ConvergencePoint{}
	}
	next := 1
	for _, p := range points {
		for _, x := range []float64{p.Objective, p.Change, p.Violation} {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, fmt.Errorf("convergence history: iteration %d has a non-finite figure (%v); the solver diverged", p.Iter, x)
			}
		}
		if p.Gap != nil && (math.IsNaN(*p.Gap) || math.IsInf(*p.Gap, 0)) {
			return nil, fmt.Errorf("convergence history: iteration %d has a non-finite duality gap", p.Iter)
		}
		if p.Iter < next || p.Iter > iterations {
			return nil, fmt.Errorf("convergence history: iteration %d out of order or beyond the run's %d iterations", p.Iter, iterations)
		}
		for ; next < p.Iter; next++ {
			c.Missing = append(c.Missing, next)
		}
		next = p.Iter + 1
	}
	for ; next <= iterations; next++ {
		c.Missing = append(c.Missing, next)
	}
	return c, nil
}
