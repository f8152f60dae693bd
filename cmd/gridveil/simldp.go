package main

import (
	"fmt"
	"math/rand/v2"

	"github.com/spf13/pflag"

	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/ldp"
	"github.com/gridveil/gridveil/report"
)

// baselineFlags choose where the SO's baseline comes from (docs/ARCHITECTURE.md C5):
// the true loads, or LDP estimates from the households' meters.
type baselineFlags struct {
	source       string
	mechanism    string
	epsilon      float64
	dayEpsilon   float64
	metersPerBus int
}

func (f *baselineFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.source, "baseline", "true", `where the SO's baseline comes from: "true", or "ldp" (estimated from LDP-perturbed meter readings)`)
	fl.StringVar(&f.mechanism, "ldp-mechanism", "hybrid", "with --baseline ldp: the meters' mechanism ("+fmt.Sprint(ldp.Names())+")")
	fl.Float64Var(&f.epsilon, "epsilon", 0, "with --baseline ldp: epsilon of each meter reading (give this or --day-epsilon)")
	fl.Float64Var(&f.dayEpsilon, "day-epsilon", 0, "with --baseline ldp: each meter's budget for the whole horizon, split over its readings")
	fl.IntVar(&f.metersPerBus, "meters-per-bus", 100, "with --baseline ldp: household meters behind each loaded bus")
}

// LDPBaselineFile is ldp_baseline.json.
type LDPBaselineFile struct {
	Schema     string              `json:"schema"`
	Estimate   *ldp.BaselineReport `json:"estimate"`
	Comparison *ldp.Comparison     `json:"comparison"`
}

// solveOnLDP estimates the baseline from LDP meter readings, solves on the
// estimate, and scores the schedules on the true grid against the optimum
// on the true baseline. It returns the LDP-based solution and the problem
// the SO solved (p with its baselines replaced by the estimates), which
// only says what the SO believed: the grid is still p.
func (f *baselineFlags) solveOnLDP(p *charging.Problem, seed uint64, opt charging.Options) (*charging.Solution, *charging.Problem, *LDPBaselineFile, error) {
	if f.source != "ldp" {
		return nil, nil, nil, fmt.Errorf("--baseline %q: use true or ldp", f.source)
	}
	mech, err := ldp.ParseName(f.mechanism)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--ldp-mechanism: %w", err)
	}
	if (f.epsilon > 0) == (f.dayEpsilon > 0) {
		return nil, nil, nil, fmt.Errorf("--baseline ldp needs exactly one of --epsilon (per reading) and --day-epsilon (per meter and horizon)")
	}
	est, rep, err := ldp.EstimateBaseline(p, ldp.BaselineOptions{Mechanism: mech, Epsilon: f.epsilon, DayEpsilon: f.dayEpsilon, MetersPerBus: f.metersPerBus},
		rand.New(rand.NewPCG(seed, 0x6c6470))) // "ldp"
	if err != nil {
		return nil, nil, nil, fmt.Errorf("estimating the baseline: %w", err)
	}
	sol, err := charging.Solve(est, opt)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("solving on the LDP estimate of the baseline (lowest estimated voltage %.4f pu): %w; raise --epsilon or --meters-per-bus", rep.MinVoltageEstimated, err)
	}
	ref, err := charging.Solve(p, opt)
	if err != nil {
		return nil, nil, nil, err
	}
	cmp, err := ldp.Compare(p, ref, sol)
	if err != nil {
		return nil, nil, nil, err
	}
	return sol, est, &LDPBaselineFile{Schema: "gridveil/ldp-baseline/v1", Estimate: rep, Comparison: cmp}, nil
}

func ldpBaselineTable(l *LDPBaselineFile) report.Table {
	r, c := l.Estimate, l.Comparison
	g := func(v float64) string { return fmt.Sprintf("%.4g", v) }
	return report.Table{
		Title:  "Coordination on an LDP-estimated baseline",
		Header: []string{"quantity", "value"},
		Rows: [][]string{
			{"mechanism", string(r.Mechanism)},
			{"epsilon per reading / per meter and horizon", g(r.EpsilonPerReport) + " / " + g(r.EpsilonPerDay)},
			{"meters", fmt.Sprint(r.Meters)},
			{"baseline error per bus-slot, RMSE kW (predicted)", g(r.RMSE) + " (" + g(r.PredictedRMSE) + ")"},
			{"total baseline error, RMSE kW (predicted)", g(r.TotalRMSE) + " (" + g(r.PredictedTotalRMSE) + ")"},
			{"objective above the true-baseline optimum", fmt.Sprintf("%.3g%%", 100*c.RelGap)},
			{"aggregate load vs optimum, RMSE / max kW", g(c.AggregateRMSE) + " / " + g(c.MaxAggDiff)},
			{"peak load, optimum / LDP kW", g(c.Peak) + " / " + g(c.PeakLDP)},
			{"lowest voltage, optimum / LDP pu", g(c.MinVoltage) + " / " + g(c.MinVoltageLDP)},
			{"bus-slots below vmin on the true grid", fmt.Sprint(c.Violations)},
		},
		Caption: "The SO computes the schedules on its LDP estimate of each bus's baseline; both schedules are then evaluated on the true grid.",
	}
}
