package ldp_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/ldp"
	"github.com/gridveil/gridveil/scenario"
)

// The wiring of "gridveil sim --baseline ldp": estimate the baseline from
// LDP meter reports, coordinate on the estimate, and score the schedules
// on the true grid against the optimum.
func ExampleEstimateBaseline() {
	spec, _ := scenario.Load("ieee13-paper")
	p, _, _ := scenario.Build(spec, 1, 0)
	opt, _ := charging.Solve(p, charging.Options{Workers: 1})

	rng := rand.New(rand.NewPCG(1, 2))
	est, rep, err := ldp.EstimateBaseline(p, ldp.BaselineOptions{Mechanism: ldp.Hybrid, Epsilon: 1, MetersPerBus: 100}, rng)
	if err != nil {
		fmt.Println(err)
		return
	}
	sol, err := charging.Solve(est, charging.Options{Workers: 1})
	if err != nil {
		fmt.Println(err) // e.g. the estimated baseline alone violates vmin
		return
	}
	c, _ := ldp.Compare(p, opt, sol)
	fmt.Printf("%d meters, %d reports, epsilon %g per report, %g per meter per day\n", rep.Meters, rep.Reports, rep.EpsilonPerReport, rep.EpsilonPerDay)
	fmt.Printf("baseline error: %.0f kW per bus-slot (predicted %.0f), %.0f kW on the total (predicted %.0f)\n", rep.RMSE, rep.PredictedRMSE, rep.TotalRMSE, rep.PredictedTotalRMSE)
	fmt.Printf("coordination: objective %.2f%% above the optimum, aggregate off by %.0f kW RMS, lowest voltage %.4f pu, %d violations\n", 100*c.RelGap, c.AggregateRMSE, c.MinVoltageLDP, c.Violations)
	// Output:
	// 900 meters, 43200 reports, epsilon 1 per report, 48 per meter per day
	// baseline error: 75 kW per bus-slot (predicted 77), 222 kW on the total (predicted 231)
	// coordination: objective 0.26% above the optimum, aggregate off by 114 kW RMS, lowest voltage 0.9771 pu, 0 violations
}
