package sim

import (
	"fmt"
	"math/rand/v2"

	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/ldp"
	"github.com/gridveil/gridveil/runfile"
)

// Baseline choose where the SO's baseline comes from (docs/ARCHITECTURE.md C5):
// the true loads, or LDP estimates from the households' meters.
type Baseline struct {
	Source       string  // "true" or "ldp"
	Mechanism    string  // with "ldp": the meters' mechanism (ldp.Names)
	Epsilon      float64 // with "ldp": epsilon of each reading (give this or DayEpsilon)
	DayEpsilon   float64 // with "ldp": each meter's budget for the horizon
	MetersPerBus int     // with "ldp": household meters behind each loaded bus
}

// solveOnLDP estimates the baseline from LDP meter readings, solves on the
// estimate, and scores the schedules on the true grid against the optimum
// on the true baseline. It returns the LDP-based solution and the problem
// the SO solved (p with its baselines replaced by the estimates), which
// only says what the SO believed: the grid is still p.
func (f *Baseline) solveOnLDP(p *charging.Problem, seed uint64, opt charging.Options) (*charging.Solution, *charging.Problem, *runfile.LDPBaseline, error) {
	if f.Source != "ldp" {
		return nil, nil, nil, fmt.Errorf("--baseline %q: use true or ldp", f.Source)
	}
	mech, err := ldp.ParseName(f.Mechanism)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--ldp-mechanism: %w", err)
	}
	if (f.Epsilon > 0) == (f.DayEpsilon > 0) {
		return nil, nil, nil, fmt.Errorf("--baseline ldp needs exactly one of --epsilon (per reading) and --day-epsilon (per meter and horizon)")
	}
	est, rep, err := ldp.EstimateBaseline(p, ldp.BaselineOptions{Mechanism: mech, Epsilon: f.Epsilon, DayEpsilon: f.DayEpsilon, MetersPerBus: f.MetersPerBus},
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
	return sol, est, &runfile.LDPBaseline{Schema: "gridveil/ldp-baseline/v1", Estimate: rep, Comparison: cmp}, nil
}

// V2G are the day's options for vehicles that give energy back.
type V2G struct {
	// Compare also solves the day with discharging switched off
	// (charging only) and reports what discharging bought.
	Compare bool
	// Request runs discharge on request (discharge.go): the CA asks the
	// bidirectional vehicles and only those that agree keep their
	// discharging set. Without it every bidirectional vehicle of the
	// instance may discharge and nothing is settled.
	Request bool
	// Willing is the share of bidirectional vehicles whose owners agree,
	// each drawn from the seed.
	Willing float64
	// Price is what the grid company pays per kWh discharged to the grid,
	// milli-currency.
	Price int64
	// V2VLimit is the most a charging vehicle pays per kWh in the V2V
	// auction (what the grid would charge it), milli-currency.
	V2VLimit int64
	// V2VPenalty is what a V2V seller pays per kWh it delivers short of
	// its award, milli-currency (C7's deviation penalty).
	V2VPenalty int64
}

// chargingOnly is p with every vehicle's discharge limit set to 0: the
// same batteries, floors and needs, charging only.
func chargingOnly(p *charging.Problem) (*charging.Problem, bool) {
	q := *p
	q.EVs = append([]charging.EV(nil), p.EVs...)
	any := false
	for i := range q.EVs {
		if q.EVs[i].PDis > 0 {
			q.EVs[i].PDis = 0
			any = true
		}
	}
	return &q, any
}

// solveChargingOnly solves the comparison day with exact sums (it measures
// what discharging buys, not a privacy mechanism).
func (f *V2G) solveChargingOnly(p *charging.Problem, maxIter, workers int) (*charging.Solution, *charging.GridState, error) {
	q, any := chargingOnly(p)
	if !any || !f.Compare {
		return nil, nil, nil
	}
	sol, err := charging.Solve(q, charging.Options{MaxIter: maxIter, Workers: workers})
	if err != nil {
		return nil, nil, fmt.Errorf("the charging-only comparison: %w", err)
	}
	g, err := charging.Evaluate(q, sol.Schedules)
	if err != nil {
		return nil, nil, err
	}
	return sol, g, nil
}
