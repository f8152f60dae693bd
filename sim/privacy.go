package sim

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/gridveil/gridveil/aggregate"
	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/report"
	"github.com/gridveil/gridveil/runfile"
	"github.com/gridveil/gridveil/scenario"
)

// Privacy selects and parameterises a private aggregation mechanism
// (docs/PRIVACY.md).
type Privacy struct {
	Mechanism   string // one of Mechanisms
	Compare     bool   // also run every mechanism on the instance (privacy.json)
	DumpView    string // "so": write what the SO received (so_view.json)
	Iterations  int    // iterations of the noisy mechanisms (obfuscation, dp)
	Obfuscation aggregate.ObfuscationConfig
	Masking     aggregate.MaskingConfig
	Shamir      aggregate.ShamirConfig
	DP          aggregate.DPConfig
}

// Mechanisms are the private aggregation mechanisms by name, in the order
// of the comparison.
var Mechanisms = []string{"none", "obfuscation", "masking", "shamir", "dp"}

// Build makes the named mechanism for p with f's parameters; record keeps
// what the parties saw, for the attacks and so_view.json.
func (f *Privacy) Build(name string, p *charging.Problem, seed uint64, record bool) (aggregate.Mechanism, error) {
	switch name {
	case "none":
		return aggregate.NewNone(p, record), nil
	case "obfuscation":
		o, err := aggregate.NewObfuscation(p, f.Obfuscation, seed, record)
		if err != nil {
			return nil, err
		}
		// Paper Fig. 5 shows EV 8 at iteration 12.
		o.FigEV, o.FigIter = min(7, len(p.EVs)-1), 11
		return o, nil
	case "masking":
		return aggregate.NewMasking(p, f.Masking, seed, record)
	case "shamir":
		return aggregate.NewShamir(p, f.Shamir, record)
	case "dp":
		return aggregate.NewDP(p, f.DP, seed, record)
	}
	return nil, fmt.Errorf("--privacy %q: use one of %s", name, strings.Join(Mechanisms, ", "))
}

// options returns solver options for a mechanism: exact ones run to
// convergence, noisy ones a fixed number of iterations.
func (f *Privacy) options(m aggregate.Mechanism, base charging.Options) charging.Options {
	base.Aggregator = m
	if !m.Exact() {
		base.MaxIter = f.Iterations
	}
	return base
}

// ComparePrivacy runs every mechanism on p, one worker each so that the
// time per vehicle is CPU time, and scores them against the none optimum
// on the true grid. It prints a line per mechanism on progress.
func ComparePrivacy(p *charging.Problem, m *scenario.Meta, f *Privacy, progress io.Writer) (*runfile.Privacy, error) {
	out := &runfile.Privacy{Schema: "gridveil/privacy/v1", Scenario: m.Scenario, Seed: m.Seed, EVs: len(p.EVs), Slots: p.Slots, Adversaries: aggregate.Adversaries}
	var ref *charging.GridState // none's optimum on the true grid
	// One solve to warm caches and the allocator, so that the first
	// mechanism timed is not charged for them.
	if _, err := charging.Solve(p, charging.Options{Workers: 1}); err != nil {
		return nil, err
	}
	for _, name := range Mechanisms {
		mech, err := f.Build(name, p, m.Seed, true)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(progress, "  %-12s ", name)
		// Timed on a separate instance without the recording the attacks
		// need, on one worker so that its wall time is CPU time.
		timed, err := f.Build(name, p, m.Seed, false)
		if err != nil {
			return nil, err
		}
		d, _, err := IterationTime(p, timed, 1, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		sol, err := charging.Solve(p, f.options(mech, charging.Options{Workers: 1}))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		// The true grid the schedules produce, not the SO's view of it:
		// the deviation of a noisy mechanism is measured on the load the
		// feeders carry, against none's optimum on the same true grid.
		g, err := charging.Evaluate(p, sol.Schedules)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if name == "none" {
			ref = g
		}
		agg := g.Aggregate
		row := runfile.PrivacyRow{
			Mechanism: name, Params: mech.Params(), Iterations: sol.Iterations, Converged: sol.Converged,
			BytesPerEVIter: mech.ReportBytes(p.Slots),
			CPUNsPerEVIter: float64(d.Nanoseconds()) / float64(max(len(p.EVs), 1)),
		}
		row.DeviationKW = 0
		for t := range agg {
			row.DeviationKW = math.Max(row.DeviationKW, math.Abs(agg[t]-ref.Aggregate[t]))
		}
		row.ObjectiveGap = (charging.Objective(agg) - ref.Objective) / ref.Objective
		if row.Attacks, err = aggregate.Attack(mech, p, sol); err != nil {
			return nil, err
		}
		switch mm := mech.(type) {
		case *aggregate.DP:
			l := mm.Accountant(sol.Iterations)
			row.PrivacyLoss = &l
		case *aggregate.Masking:
			row.FailedUnmaskings = mm.FailedRounds()
		case *aggregate.Obfuscation:
			if msgs, truth := mm.Figure(); msgs != nil {
				row.Band = &report.Band{Name: p.EVs[mm.FigEV].ID, Iteration: mm.FigIter + 1, Truth: truth, Messages: msgs}
			}
		}
		fmt.Fprintf(progress, "%4d iterations, deviation %.3g kW, curious SO RMSE %.3g kW (prior %.3g)\n", sol.Iterations, row.DeviationKW, row.Attacks.RMSE["so"], row.Attacks.Prior)
		out.Mechanisms = append(out.Mechanisms, row)
	}
	return out, nil
}

// IterationTime is the median time of one coordination iteration with
// mech, wall and process CPU: the medians over 12 iterations, timed between
// the solver's progress calls so that set-up (the solver's, key agreement)
// is left out. This is BenchmarkIteration's method. workers 0 means every
// core. processCPU reads the process's CPU time so far (nil: wall time
// only, and cpu is 0).
func IterationTime(p *charging.Problem, mech aggregate.Mechanism, workers int, processCPU func() time.Duration) (wall, cpu time.Duration, err error) {
	if processCPU == nil {
		processCPU = func() time.Duration { return 0 }
	}
	var walls, cpus []time.Duration
	var lastWall time.Time
	var lastCPU time.Duration
	lap := func(charging.Stats) {
		now, c := time.Now(), processCPU()
		if !lastWall.IsZero() {
			walls = append(walls, now.Sub(lastWall))
			cpus = append(cpus, c-lastCPU)
		}
		lastWall, lastCPU = now, c
	}
	opt := charging.Options{Aggregator: mech, Workers: workers, MaxIter: 12, GapTol: 1e-300, RelTol: 1e-300, Progress: lap}
	if _, err := charging.Solve(p, opt); err != nil {
		return 0, 0, err
	}
	if len(walls) == 0 {
		return 0, 0, nil
	}
	slices.Sort(walls)
	slices.Sort(cpus)
	return walls[len(walls)/2], cpus[len(cpus)/2], nil
}
