package runfile

import (
	"fmt"

	"github.com/gridveil/gridveil/ldp"
	"github.com/gridveil/gridveil/report"
)

// LDPBaseline is ldp_baseline.json.
type LDPBaseline struct {
	Schema     string              `json:"schema"`
	Estimate   *ldp.BaselineReport `json:"estimate"`
	Comparison *ldp.Comparison     `json:"comparison"`
}

// LDPBaselineTable is the report's table of a day on an LDP-estimated
// baseline.
func LDPBaselineTable(l *LDPBaseline) report.Table {
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
