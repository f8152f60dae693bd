package runfile

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/gridveil/gridveil/aggregate"
	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/rundir"
	"github.com/gridveil/gridveil/scenario"
)

// Outcome is a finished run: the solver's record, the grid's true state
// under its schedules, and, when they can differ, what the SO believed.
type Outcome struct {
	Solution *charging.Solution
	Grid     *charging.GridState // charging.Evaluate of the schedules on the true problem
	SO       *scenario.SOView    // nil when the SO's view is the grid's (exact sums on true baselines)
	// SOPriced counts the voltage limits the SO priced (mu > 0): the
	// binding limits when its view is the grid's, its belief otherwise.
	SOPriced int
}

// NewOutcome evaluates sol's schedules on the true problem p. soProblem is
// the problem the SO solved (p, or p on LDP-estimated baselines when
// ldpBaseline); when the SO's sums were noisy (mech not exact) or its
// baselines estimated, the outcome carries the SO's view beside the grid.
func NewOutcome(p, soProblem *charging.Problem, sol *charging.Solution, mech aggregate.Mechanism, ldpBaseline bool) (*Outcome, error) {
	g, err := charging.Evaluate(p, sol.Schedules)
	if err != nil {
		return nil, err
	}
	r := &Outcome{Solution: sol, Grid: g}
	for fi := range sol.Mu {
		for b := 1; b < len(sol.Mu[fi]); b++ {
			for _, m := range sol.Mu[fi][b] {
				if m > 0 {
					r.SOPriced++
				}
			}
		}
	}
	var why []string
	if !mech.Exact() {
		why = append(why, fmt.Sprintf("--privacy %s: the per-bus sums the SO received are noisy", mech.Name()))
	}
	if ldpBaseline {
		why = append(why, "--baseline ldp: the SO solved on its LDP estimates of the baselines")
	}
	if len(why) > 0 {
		r.SO = scenario.NewSOView(soProblem, sol, strings.Join(why, "; "))
	}
	return r, nil
}

// loadRange is the smallest and largest value of a.
func loadRange(a []float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, v := range a {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	return
}

// PrintSummary prints a run's summary on the true grid, headed "gridveil
// COMMAND" (sim, up), and the SO's view on labelled lines when it is not
// the grid's. solve is the coordination's wall time.
func PrintSummary(w io.Writer, command string, p *charging.Problem, m *scenario.Meta, r *Outcome, solve time.Duration) {
	sol, g := r.Solution, r.Grid
	bl, bh := loadRange(p.Baseline())
	al, ah := loadRange(g.Aggregate)
	energy := StoredEnergy(p, sol)
	where := ""
	if len(p.Feeders) > 0 {
		f := &p.Feeders[g.MinFeeder]
		where = fmt.Sprintf("%s/%s at %s", f.Name, f.Buses[g.MinBus].Name, scenario.SlotClock(m.Start, p.DT, g.MinSlot))
	}
	status := "converged"
	if !sol.Converged {
		status = "NOT converged"
	}
	gap := "n/a"
	if !math.IsNaN(sol.Gap) {
		gap = fmt.Sprintf("%.1e", sol.Gap)
	}
	fmt.Fprintf(w, "gridveil %s: %s, seed %d\n", command, m.Scenario, m.Seed)
	fmt.Fprintf(w, "  network      %d feeder(s), %d EVs, %d slots of %g min from %s, vmin %.3f pu\n", len(p.Feeders), len(p.EVs), p.Slots, p.DT*60, m.Start, p.VMin)
	fmt.Fprintf(w, "  solver       %s in %d iterations, %s (%.3g ms/iteration), duality gap %s\n", status, sol.Iterations, solve.Round(time.Microsecond), float64(solve.Microseconds())/1000/float64(max(sol.Iterations, 1)), gap)
	fmt.Fprintf(w, "  EV energy    %.1f kWh stored, %.1f kWh drawn from the grid\n", energy, g.EVEnergy)
	fmt.Fprintf(w, "  load         baseline %.0f-%.0f kW (peak/valley %.2f) -> with EVs %.0f-%.0f kW (%.2f)\n", bl, bh, bh/bl, al, ah, ah/al)
	if r.SO == nil {
		fmt.Fprintf(w, "  voltage      min %.4f pu (%s); %d bus-slot(s) below vmin; %d binding limit(s)\n", g.MinVoltage, where, g.Violations, r.SOPriced)
	} else {
		fmt.Fprintf(w, "  voltage      min %.4f pu (%s); %d bus-slot(s) below vmin\n", g.MinVoltage, where, g.Violations)
		sl, sh := loadRange(r.SO.Aggregate)
		fmt.Fprintf(w, "  SO's view    not the grid (%s):\n               it believed load %.0f-%.0f kW, min voltage %.4f pu, and priced %d limit(s)\n", r.SO.Why, sl, sh, r.SO.MinVoltage, r.SOPriced)
	}
}

// PrintFiles lists every file a run wrote, and the earlier run's files it
// removed or the foreign ones --force left beside it.
func PrintFiles(w io.Writer, r *rundir.Result) {
	fmt.Fprintf(w, "  files        %s\n", strings.Join(r.Paths(), ", "))
	if len(r.Removed) > 0 {
		fmt.Fprintf(w, "               removed the earlier run's %s\n", strings.Join(r.Removed, ", "))
	}
	if len(r.Foreign) > 0 {
		fmt.Fprintf(w, "               left in place, not from this run: %s\n", strings.Join(r.Foreign, ", "))
	}
}

// PrintV2G is the summary line for battery vehicles.
func PrintV2G(w io.Writer, v *scenario.V2GResult, objective float64) {
	if v == nil {
		return
	}
	fmt.Fprintf(w, "  v2g          %d bidirectional of %d battery vehicles, %.1f kWh discharged; peak %.1f kW (baseline %.1f)", v.Bidirectional, v.Batteries, v.DischargedKWh, v.Peak, v.PeakBaseline)
	if c := v.ChargingOnly; c != nil {
		fmt.Fprintf(w, ", charging only %.1f kW (objective %+.3g%%)", c.Peak, 100*(objective-c.Objective)/c.Objective)
	}
	fmt.Fprintf(w, "; relaxation gap %.2g kW\n", v.Simultaneous)
}

// StoredEnergy is what the vehicles store, kWh: each charging-only
// vehicle's demand and each battery vehicle's SOC gain over its stay.
func StoredEnergy(p *charging.Problem, sol *charging.Solution) float64 {
	e := 0.0
	for i, ev := range p.EVs {
		if ev.Battery() && sol.SOC != nil && sol.SOC[i] != nil {
			e += sol.SOC[i][len(sol.SOC[i])-1] - ev.SOCArrive
			continue
		}
		e += ev.Energy
	}
	return e
}

// PrintLDPBaseline is the summary line of a day coordinated on an
// LDP-estimated baseline.
func PrintLDPBaseline(w io.Writer, l *LDPBaseline) {
	if l == nil {
		return
	}
	fmt.Fprintf(w, "  ldp baseline %s, epsilon %.3g per reading (%.3g per meter over the horizon), %d meters: baseline RMSE %.1f kW per bus-slot;\n               on the true grid the schedules cost %+.3g%% over the true-baseline optimum, %d bus-slots below vmin\n",
		l.Estimate.Mechanism, l.Estimate.EpsilonPerReport, l.Estimate.EpsilonPerDay, l.Estimate.Meters, l.Estimate.RMSE, 100*l.Comparison.RelGap, l.Comparison.Violations)
}

// PrintMarket is the summary lines of the day's market: trades, refusals
// and what the grid company received.
func PrintMarket(w io.Writer, mo *Market) {
	if mo == nil {
		return
	}
	var trades, failed, contracts int
	var vol, p2p int64
	for _, win := range mo.Day.Windows {
		trades += win.Trades
		failed += win.Failed
		vol += win.Volume
		p2p += win.P2PVolume
		contracts += win.Contracts
	}
	in := mo.Day.Income
	fmt.Fprintf(w, "  market       %d stations, %d windows (%s): %d trades and %d P2P contracts, %.1f + %.1f kWh of rights traded, %d matches refused by the security check\n",
		len(mo.Stations), len(mo.Day.Windows), mo.Day.Rule, trades, contracts, float64(vol)/1000, float64(p2p)/1000, failed)
	fmt.Fprintf(w, "               the grid company received %.3f: %.3f fees and spread, %.3f congestion fees, %.3f penalties\n",
		float64(in.Total())/1000, float64(in.TradeFees+in.Spread)/1000, float64(in.Congestion)/1000, float64(in.Penalties)/1000)
}
