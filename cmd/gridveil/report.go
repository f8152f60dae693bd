package main

import (
	"fmt"
	"io"
	"math"

	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/report"
	"github.com/gridveil/gridveil/scenario"
)

// maxProfiles bounds the EV profiles drawn in the report: the paper's 84 are
// readable as thin lines; beyond that an evenly spaced sample is shown.
const maxProfiles = 84

// reportExtras are optional sections of the report.
type reportExtras struct {
	lines  []report.LineFigure
	curves []report.XYFigure
	tables []report.Table
	band   *report.Band
	notes  []string
}

// writeChargingReport draws the run on the true grid (r.grid): the load
// and voltages the schedules produce, not the SO's view, which gets its own
// labelled rows and figure when it differs.
func writeChargingReport(w io.Writer, p *charging.Problem, m *scenario.Meta, r *simResult, extra *reportExtras) error {
	sol, g := r.sol, r.grid
	c := &report.Charging{
		Title:     fmt.Sprintf("gridveil: %s, seed %d", m.Scenario, m.Seed),
		Baseline:  p.Baseline(),
		Aggregate: g.Aggregate,
		VMin:      p.VMin,
	}
	for t := 0; t < p.Slots; t++ {
		c.SlotLabels = append(c.SlotLabels, scenario.SlotClock(m.Start, p.DT, t))
	}
	stride := max(1, (len(p.EVs)+maxProfiles-1)/maxProfiles)
	c.EVTotal = len(p.EVs)
	for i := 0; i < len(p.EVs); i += stride {
		c.EVs = append(c.EVs, report.Series{Name: p.EVs[i].ID, Y: sol.Schedules[i]})
	}
	// Voltages of the feeder whose voltage falls lowest.
	worst, minV := g.MinFeeder, g.MinVoltage
	f := &p.Feeders[worst]
	for b := 1; b < len(f.Buses); b++ {
		c.Voltages = append(c.Voltages, report.Series{Name: f.Buses[b].Name, Y: g.Voltage[worst][b]})
	}
	for _, s := range sol.History {
		c.Convergence = append(c.Convergence, report.ConvPoint{Iter: s.Iter, Objective: s.Objective, Change: s.Change, Violation: s.Violation})
	}
	energy := storedEnergy(p, sol)
	gap := "not computed"
	if !math.IsNaN(sol.Gap) {
		gap = fmt.Sprintf("%.2e", sol.Gap)
	}
	c.Summary = [][2]string{
		{"scenario", m.Scenario},
		{"seed", fmt.Sprint(m.Seed)},
		{"feeders", fmt.Sprint(len(p.Feeders))},
		{"EVs", fmt.Sprint(len(p.EVs))},
		{"horizon", fmt.Sprintf("%d slots of %g min from %s", p.Slots, p.DT*60, m.Start)},
		{"EV energy stored", fmt.Sprintf("%.1f kWh (batteries; the grid supplies this divided by each EV's efficiency)", energy)},
		{"EV energy drawn from the grid", fmt.Sprintf("%.1f kWh", g.EVEnergy)},
		{"iterations", fmt.Sprint(sol.Iterations)},
		{"converged", fmt.Sprint(sol.Converged)},
		{"relative duality gap", gap},
		{"objective", fmt.Sprintf("%.6g kW²", g.Objective)},
		{"lowest voltage", fmt.Sprintf("%.4f pu on feeder %s", minV, f.Name)},
		{"bus-slots below vmin", fmt.Sprint(g.Violations)},
	}
	if so := r.so; so != nil {
		lo, hi := loadRange(so.Aggregate)
		c.Summary = append(c.Summary,
			[2]string{"SO's view (not the grid)", so.Why},
			[2]string{"SO's view: load", fmt.Sprintf("%.0f-%.0f kW", lo, hi)},
			[2]string{"SO's view: objective", fmt.Sprintf("%.6g kW²", so.Objective)},
			[2]string{"SO's view: lowest voltage", fmt.Sprintf("%.4f pu (%s)", so.MinVoltage, so.MinAt)},
			[2]string{"SO's view: limits priced (mu > 0)", fmt.Sprint(r.soPriced)},
		)
	}
	c.Notes = []string{
		"Every load and voltage figure and the summary above are the true grid: the true baselines plus the vehicles' final schedules, voltages by LinDistFlow. Rows marked SO's view are what the system operator believed, when its sums were noisy or its baselines estimated.",
		"Valley filling minimises 1/2 Σ_t (D(t) + Σ_i x_i(t))² subject to each EV's private local set and the LinDistFlow voltage limit V ≥ vmin at every bus (docs/ARCHITECTURE.md C2, seed 001). Each EV updates its own schedule from the system operator's broadcast; the operator sees only per-bus sums.",
		"The aggregate load is unique at the optimum; individual schedules are not. Optimality is certified by the relative duality gap against an independent Lagrangian lower bound.",
	}
	if len(p.Feeders) > 1 {
		c.Notes = append(c.Notes, fmt.Sprintf("The region has %d feeders; the voltage figure shows %s, the feeder whose voltage falls lowest.", len(p.Feeders), f.Name))
	}
	if stride > 1 {
		c.Notes = append(c.Notes, fmt.Sprintf("The EV figure shows every %d-th of %d EVs.", stride, len(p.EVs)))
	}
	if extra != nil {
		c.Tables = extra.tables
		c.Lines = extra.lines
		c.Curves = extra.curves
		c.Band = extra.band
		c.Notes = append(c.Notes, extra.notes...)
	}
	return report.WriteCharging(w, c)
}

// soViewFigure draws the true aggregate against what the SO believed it
// was (and, with an estimated baseline, the baseline the SO used).
func soViewFigure(p *charging.Problem, m *scenario.Meta, r *simResult) report.LineFigure {
	fig := report.LineFigure{
		Title:  "What the SO believed against the grid",
		YLabel: "load [kW]",
		Series: []report.Series{{Name: "true aggregate", Y: r.grid.Aggregate}, {Name: "SO's view of the aggregate", Y: r.so.Aggregate}},
	}
	for t := 0; t < p.Slots; t++ {
		fig.Labels = append(fig.Labels, scenario.SlotClock(m.Start, p.DT, t))
	}
	base := p.Baseline()
	differs := false
	for t, v := range r.so.Baseline {
		differs = differs || v != base[t]
	}
	if differs {
		fig.Series = append(fig.Series, report.Series{Name: "true baseline", Y: base}, report.Series{Name: "SO's baseline", Y: r.so.Baseline})
	}
	dev := 0.0
	for t := range r.grid.Aggregate {
		dev = math.Max(dev, math.Abs(r.so.Aggregate[t]-r.grid.Aggregate[t]))
	}
	fig.Caption = fmt.Sprintf("The SO's view is not the grid (%s). True aggregate: the true baselines plus the vehicles' final schedules; the SO's view differs from it by up to %.3g kW.", r.so.Why, dev)
	return fig
}
