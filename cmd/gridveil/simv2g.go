package main

import (
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/report"
	"github.com/gridveil/gridveil/scenario"
)

// v2gFlags are sim's flags for vehicles that give energy back.
type v2gFlags struct {
	share   float64
	compare bool
}

func (f *v2gFlags) register(fl *pflag.FlagSet) {
	fl.Float64Var(&f.share, "v2g-share", 0, "fraction of the drawn vehicles with a battery that may discharge, in [0, 1] (default: the scenario's evs.v2g.share)")
	fl.BoolVar(&f.compare, "v2g-compare", true, "with bidirectional vehicles, also solve the day with discharging switched off and report what discharging bought")
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
func (f *v2gFlags) solveChargingOnly(p *charging.Problem, maxIter, workers int) (*charging.Solution, *charging.GridState, error) {
	q, any := chargingOnly(p)
	if !any || !f.compare {
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

// maxSOCLines bounds the SOC trajectories drawn in the report.
const maxSOCLines = 40

// v2gFigures draws the aggregate with and without discharging and the
// battery vehicles' SOC trajectories.
func v2gFigures(p *charging.Problem, m *scenario.Meta, r *simResult, v *scenario.V2GResult) []report.LineFigure {
	var labels []string
	for t := 0; t < p.Slots; t++ {
		labels = append(labels, scenario.SlotClock(m.Start, p.DT, t))
	}
	load := report.LineFigure{Title: "What discharging bought", YLabel: "load [kW]", Labels: labels,
		Series: []report.Series{{Name: "baseline", Y: p.Baseline()}, {Name: "with discharging", Y: r.grid.Aggregate}}}
	load.Caption = fmt.Sprintf("%d of %d vehicles may discharge (%d have a battery model). Peak: baseline %.1f kW, with discharging %.1f kW.", v.Bidirectional, len(p.EVs), v.Batteries, v.PeakBaseline, v.Peak)
	if c := v.ChargingOnly; c != nil {
		load.Series = append(load.Series, report.Series{Name: "charging only", Y: c.Aggregate})
		load.Caption += fmt.Sprintf(" Charging only (every pdis 0, same batteries and needs): peak %.1f kW, objective %.6g against %.6g kW².", c.Peak, c.Objective, r.grid.Objective)
	}
	soc := report.LineFigure{Title: "State of charge of the battery vehicles", YLabel: "SOC [kWh]", Labels: labels}
	n := 0
	for i, ev := range p.EVs {
		if ev.Battery() && r.sol.SOC != nil && r.sol.SOC[i] != nil {
			n++
		}
	}
	stride := max(1, (n+maxSOCLines-1)/maxSOCLines)
	k := 0
	for i, ev := range p.EVs {
		if !ev.Battery() || r.sol.SOC == nil || r.sol.SOC[i] == nil {
			continue
		}
		if k%stride == 0 {
			soc.Series = append(soc.Series, report.Series{Name: ev.ID, Y: r.sol.SOC[i]})
		}
		k++
	}
	soc.Caption = fmt.Sprintf("Each battery vehicle's SOC after every slot (every %d-th of %d shown), between its floor and capacity, reaching its departure need. Largest charge-and-discharge in one slot: %.2g kW (0: the convex relaxation is exact).", stride, n, v.Simultaneous)
	return []report.LineFigure{load, soc}
}

// printV2G is the summary line for battery vehicles.
func printV2G(w io.Writer, v *scenario.V2GResult, objective float64) {
	if v == nil {
		return
	}
	fmt.Fprintf(w, "  v2g          %d bidirectional of %d battery vehicles, %.1f kWh discharged; peak %.1f kW (baseline %.1f)", v.Bidirectional, v.Batteries, v.DischargedKWh, v.Peak, v.PeakBaseline)
	if c := v.ChargingOnly; c != nil {
		fmt.Fprintf(w, ", charging only %.1f kW (objective %+.3g%%)", c.Peak, 100*(objective-c.Objective)/c.Objective)
	}
	fmt.Fprintf(w, "; relaxation gap %.2g kW\n", v.Simultaneous)
}

// storedEnergy is what the vehicles store, kWh: each charging-only
// vehicle's demand and each battery vehicle's SOC gain over its stay.
func storedEnergy(p *charging.Problem, sol *charging.Solution) float64 {
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
