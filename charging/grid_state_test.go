package charging

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// denseState is the grid state computed the slow way: the aggregate by
// summing every schedule onto the baseline, the voltages from the dense
// path-resistance and path-reactance matrices of the LinDistFlow formula.
func denseState(p *Problem, x [][]float64) (agg []float64, volt [][][]float64) {
	agg = make([]float64, p.Slots)
	for fi := range p.Feeders {
		for _, row := range p.Feeders[fi].BaseP {
			for t, v := range row {
				agg[t] += v
			}
		}
	}
	for i := range p.EVs {
		for t, v := range x[i] {
			agg[t] += v
		}
	}
	for fi := range p.Feeders {
		f := &p.Feeders[fi]
		R, X := f.PathResistance(), denseX(&f.Feeder)
		n := len(f.Buses)
		vf := make([][]float64, n)
		for j := range vf {
			vf[j] = make([]float64, p.Slots)
		}
		for t := 0; t < p.Slots; t++ {
			load := make([]float64, n)
			for b := range load {
				load[b] = f.BaseP[b][t]
			}
			for i, ev := range p.EVs {
				if ev.Feeder == fi {
					load[ev.Bus] += x[i][t]
				}
			}
			for j := 0; j < n; j++ {
				v2 := f.V0 * f.V0
				for k := 1; k < n; k++ {
					v2 -= 2 / f.SBase * (R[j][k]*load[k] + X[j][k]*f.BaseQ[k][t])
				}
				vf[j][t] = math.Sqrt(v2)
			}
		}
		volt = append(volt, vf)
	}
	return agg, volt
}

// TestEvaluateDense: for arbitrary schedules (not a solver's), Evaluate's
// aggregate and every bus voltage equal the dense LinDistFlow formula, and
// its minimum and violation count agree with a scan of those voltages.
func TestEvaluateDense(t *testing.T) {
	p := ieee13Problem(3, stressedFleet, 0.95)
	rng := rand.New(rand.NewPCG(3, 4))
	x := make([][]float64, len(p.EVs))
	for i, ev := range p.EVs {
		x[i] = make([]float64, p.Slots)
		for tt := ev.Arrive; tt < ev.Depart; tt++ {
			x[i][tt] = ev.PMax * (0.5 + 0.5*rng.Float64())
		}
	}
	g, err := Evaluate(p, x)
	if err != nil {
		t.Fatal(err)
	}
	agg, volt := denseState(p, x)
	for tt := range agg {
		if math.Abs(g.Aggregate[tt]-agg[tt]) > 1e-9*math.Abs(agg[tt]) {
			t.Fatalf("slot %d: aggregate %v, dense %v", tt, g.Aggregate[tt], agg[tt])
		}
	}
	minV, viol := math.Inf(1), 0
	for fi := range volt {
		for b := range volt[fi] {
			for tt, v := range volt[fi][b] {
				if math.Abs(g.Voltage[fi][b][tt]-v) > 1e-12 {
					t.Fatalf("bus %d slot %d: V %v, dense %v", b, tt, g.Voltage[fi][b][tt], v)
				}
				if b > 0 {
					minV = math.Min(minV, v)
					if v < p.VMin-ViolationTol {
						viol++
					}
				}
			}
		}
	}
	// Random charging on the stressed fleet pulls the feeder under vmin:
	// the evaluation must say so, not only agree on numbers.
	if viol == 0 || g.Violations != viol || math.Abs(g.MinVoltage-minV) > 1e-12 || math.Abs(g.MaxViolation-(p.VMin-minV)) > 1e-12 {
		t.Fatalf("violations %d (dense %d), min %v (dense %v), max violation %v", g.Violations, viol, g.MinVoltage, minV, g.MaxViolation)
	}
	if got := g.Voltage[g.MinFeeder][g.MinBus][g.MinSlot]; got != g.MinVoltage {
		t.Fatalf("MinVoltage %v is not the voltage at its own location (%v)", g.MinVoltage, got)
	}
}

// TestEvaluateIsTheGridNotTheSOView: with an aggregator that misreports
// the sums, the Solution's aggregate is the SO's wrong view; Evaluate on
// its schedules gives the load the grid carries.
func TestEvaluateIsTheGridNotTheSOView(t *testing.T) {
	p := ieee13Problem(6, paperFleet, 0.95)
	sol, err := Solve(p, Options{Aggregator: biasedAggregator{bias: 50}, MaxIter: 100})
	if err != nil {
		t.Fatal(err)
	}
	g, err := Evaluate(p, sol.Schedules)
	if err != nil {
		t.Fatal(err)
	}
	agg, _ := denseState(p, sol.Schedules)
	off := 0.0
	for tt := range agg {
		if math.Abs(g.Aggregate[tt]-agg[tt]) > 1e-9*agg[tt] {
			t.Fatalf("slot %d: Evaluate %v, schedules sum to %v", tt, g.Aggregate[tt], agg[tt])
		}
		off = math.Max(off, math.Abs(sol.Aggregate[tt]-agg[tt]))
	}
	if off < 10 {
		t.Fatalf("the biased SO's aggregate is within %v kW of the grid's: the test does not exercise a wrong view", off)
	}
	// An exact run: the SO's view is the grid, to rounding.
	exact, err := Solve(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ge, err := Evaluate(p, exact.Schedules)
	if err != nil {
		t.Fatal(err)
	}
	for tt := range ge.Aggregate {
		if math.Abs(ge.Aggregate[tt]-exact.Aggregate[tt]) > 1e-9*ge.Aggregate[tt] || math.Abs(ge.Voltage[0][ge.MinBus][tt]-exact.Voltage[0][ge.MinBus][tt]) > 1e-12 {
			t.Fatalf("slot %d: an exact run's grid state differs from its solution", tt)
		}
	}
}

// TestEvaluateBadInput: schedules that do not fit the problem are refused
// by name, never a panic.
func TestEvaluateBadInput(t *testing.T) {
	p := ieee13Problem(1, paperFleet, 0.95)
	good := make([][]float64, len(p.EVs))
	for i := range good {
		good[i] = make([]float64, p.Slots)
	}
	short := append([][]float64(nil), good...)
	short[2] = short[2][:5]
	nan := append([][]float64(nil), good...)
	nan[1] = append([]float64(nil), good[1]...)
	nan[1][7] = math.NaN()
	for _, c := range []struct {
		x    [][]float64
		want string
	}{
		{good[:3], "3 schedules for 84 EVs"},
		{short, p.EVs[2].ID + `" has a schedule of 5 slots`},
		{nan, "slot 7"},
	} {
		if _, err := Evaluate(p, c.x); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want %q", err, c.want)
		}
	}
}
