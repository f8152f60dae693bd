package runfile

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

// ReportExtras are optional sections of the report.
type ReportExtras struct {
	Lines  []report.LineFigure
	Curves []report.XYFigure
	Tables []report.Table
	Band   *report.Band
	Notes  []string
}

// WriteChargingReport draws the run on the true grid (r.Grid): the load
// and voltages the schedules produce, not the SO's view, which gets its own
// labelled rows and figure when it differs.
func WriteChargingReport(w io.Writer, p *charging.Problem, m *scenario.Meta, r *Outcome, extra *ReportExtras) error {
	sol, g := r.Solution, r.Grid
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
	energy := StoredEnergy(p, sol)
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
	if so := r.SO; so != nil {
		lo, hi := loadRange(so.Aggregate)
		c.Summary = append(c.Summary,
			[2]string{"SO's view (not the grid)", so.Why},
			[2]string{"SO's view: load", fmt.Sprintf("%.0f-%.0f kW", lo, hi)},
			[2]string{"SO's view: objective", fmt.Sprintf("%.6g kW²", so.Objective)},
			[2]string{"SO's view: lowest voltage", fmt.Sprintf("%.4f pu (%s)", so.MinVoltage, so.MinAt)},
			[2]string{"SO's view: limits priced (mu > 0)", fmt.Sprint(r.SOPriced)},
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
		c.Tables = extra.Tables
		c.Lines = extra.Lines
		c.Curves = extra.Curves
		c.Band = extra.Band
		c.Notes = append(c.Notes, extra.Notes...)
	}
	return report.WriteCharging(w, c)
}

// SOViewFigure draws the true aggregate against what the SO believed it
// was (and, with an estimated baseline, the baseline the SO used).
func SOViewFigure(p *charging.Problem, m *scenario.Meta, r *Outcome) report.LineFigure {
	fig := report.LineFigure{
		Title:  "What the SO believed against the grid",
		YLabel: "load [kW]",
		Series: []report.Series{{Name: "true aggregate", Y: r.Grid.Aggregate}, {Name: "SO's view of the aggregate", Y: r.SO.Aggregate}},
	}
	for t := 0; t < p.Slots; t++ {
		fig.Labels = append(fig.Labels, scenario.SlotClock(m.Start, p.DT, t))
	}
	base := p.Baseline()
	differs := false
	for t, v := range r.SO.Baseline {
		differs = differs || v != base[t]
	}
	if differs {
		fig.Series = append(fig.Series, report.Series{Name: "true baseline", Y: base}, report.Series{Name: "SO's baseline", Y: r.SO.Baseline})
	}
	dev := 0.0
	for t := range r.Grid.Aggregate {
		dev = math.Max(dev, math.Abs(r.SO.Aggregate[t]-r.Grid.Aggregate[t]))
	}
	fig.Caption = fmt.Sprintf("The SO's view is not the grid (%s). True aggregate: the true baselines plus the vehicles' final schedules; the SO's view differs from it by up to %.3g kW.", r.SO.Why, dev)
	return fig
}

// maxSOCLines bounds the SOC trajectories drawn in the report.
const maxSOCLines = 40

// V2GFigures draws the aggregate with and without discharging and the
// battery vehicles' SOC trajectories.
func V2GFigures(p *charging.Problem, m *scenario.Meta, r *Outcome, v *scenario.V2GResult) []report.LineFigure {
	var labels []string
	for t := 0; t < p.Slots; t++ {
		labels = append(labels, scenario.SlotClock(m.Start, p.DT, t))
	}
	load := report.LineFigure{Title: "What discharging bought", YLabel: "load [kW]", Labels: labels,
		Series: []report.Series{{Name: "baseline", Y: p.Baseline()}, {Name: "with discharging", Y: r.Grid.Aggregate}}}
	load.Caption = fmt.Sprintf("%d of %d vehicles may discharge (%d have a battery model). Peak: baseline %.1f kW, with discharging %.1f kW.", v.Bidirectional, len(p.EVs), v.Batteries, v.PeakBaseline, v.Peak)
	if c := v.ChargingOnly; c != nil {
		load.Series = append(load.Series, report.Series{Name: "charging only", Y: c.Aggregate})
		load.Caption += fmt.Sprintf(" Charging only (every pdis 0, same batteries and needs): peak %.1f kW, objective %.6g against %.6g kW².", c.Peak, c.Objective, r.Grid.Objective)
	}
	soc := report.LineFigure{Title: "State of charge of the battery vehicles", YLabel: "SOC [kWh]", Labels: labels}
	n := 0
	for i, ev := range p.EVs {
		if ev.Battery() && r.Solution.SOC != nil && r.Solution.SOC[i] != nil {
			n++
		}
	}
	stride := max(1, (n+maxSOCLines-1)/maxSOCLines)
	k := 0
	for i, ev := range p.EVs {
		if !ev.Battery() || r.Solution.SOC == nil || r.Solution.SOC[i] == nil {
			continue
		}
		if k%stride == 0 {
			soc.Series = append(soc.Series, report.Series{Name: ev.ID, Y: r.Solution.SOC[i]})
		}
		k++
	}
	soc.Caption = fmt.Sprintf("Each battery vehicle's SOC after every slot (every %d-th of %d shown), between its floor and capacity, reaching its departure need. Largest charge-and-discharge in one slot: %.2g kW (0: the convex relaxation is exact).", stride, n, v.Simultaneous)
	return []report.LineFigure{load, soc}
}
