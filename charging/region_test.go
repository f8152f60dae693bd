package charging_test

import (
	"math"
	"testing"

	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/scenario"
)

// TestRegionSchedulesInEVOrder solves a region whose EVs are listed in a
// different order from the solver's internal (feeder, bus) order and checks
// every schedule against its own EV's window and demand: a mix-up in the
// final reordering would put schedules on the wrong vehicles.
func TestRegionSchedulesInEVOrder(t *testing.T) {
	spec, err := scenario.Load("ieee13-region")
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := scenario.Build(spec, 5, 500)
	if err != nil {
		t.Fatal(err)
	}
	sol, err := charging.Solve(p, charging.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !sol.Converged {
		t.Fatalf("not converged in %d iterations", sol.Iterations)
	}
	agg := p.Baseline()
	for i, ev := range p.EVs {
		sum := 0.0
		for tt, v := range sol.Schedules[i] {
			if (tt < ev.Arrive || tt >= ev.Depart) && v != 0 {
				t.Fatalf("EV %s charges %v kW in slot %d outside its window [%d, %d)", ev.ID, v, tt, ev.Arrive, ev.Depart)
			}
			sum += v
			agg[tt] += v
		}
		if math.Abs(sum*ev.Efficiency*p.DT-ev.Energy) > 1e-6*ev.Energy {
			t.Fatalf("EV %s stores %v kWh, wants %v", ev.ID, sum*ev.Efficiency*p.DT, ev.Energy)
		}
	}
	for tt := range agg {
		if math.Abs(agg[tt]-sol.Aggregate[tt]) > 1e-6 {
			t.Fatalf("slot %d: schedules sum to %v, aggregate says %v", tt, agg[tt], sol.Aggregate[tt])
		}
	}
	if gap := sol.Objective - charging.LowerBound(p, agg, sol.Mu); math.Sqrt(2*math.Max(gap, 0)) > 0.5 {
		t.Fatalf("gap %v kW^2 does not certify the aggregate to 0.5 kW", gap)
	}
}
