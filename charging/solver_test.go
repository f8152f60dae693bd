package charging

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gridveil/gridveil/grid"
)

type fleet struct {
	perBus         int
	pmax           float64
	energy         [2]float64
	arrive, depart [2]int
	buses          []string // default grid.IEEE13EVBuses; repeat a bus for more EVs there
}

// ieee13Problem builds an IEEE 13 instance directly from the grid package,
// without the scenario package, so the solver is tested on its own.
func ieee13Problem(seed uint64, fl fleet, vmin float64) *Problem {
	f, loads := grid.IEEE13()
	const slots = 48
	shape := grid.SCEResidential.Normalized(19, 0.25, slots)
	bp, bq := grid.Baseline(loads, shape)
	p := &Problem{Slots: slots, DT: 0.25, VMin: vmin, Feeders: []Feeder{{Feeder: f, BaseP: bp, BaseQ: bq}}}
	rng := rand.New(rand.NewPCG(seed, 99))
	buses := fl.buses
	if buses == nil {
		buses = grid.IEEE13EVBuses
	}
	for bi, name := range buses {
		for k := 0; k < fl.perBus; k++ {
			a := fl.arrive[0] + rng.IntN(fl.arrive[1]-fl.arrive[0]+1)
			d := fl.depart[0] + rng.IntN(fl.depart[1]-fl.depart[0]+1)
			e := fl.energy[0] + rng.Float64()*(fl.energy[1]-fl.energy[0])
			e = math.Min(e, 0.9*fl.pmax*0.9*0.25*float64(d-a))
			p.EVs = append(p.EVs, EV{ID: fmt.Sprintf("%s-%d-%d", name, bi, k), Bus: f.BusIndex(name), PMax: fl.pmax, Energy: e, Efficiency: 0.9, Arrive: a, Depart: d})
		}
	}
	return p
}

var (
	paperFleet    = fleet{perBus: 7, pmax: 6.6, energy: [2]float64{5, 25}, arrive: [2]int{0, 0}, depart: [2]int{48, 48}}
	stressedFleet = fleet{perBus: 44, pmax: 11, energy: [2]float64{15, 40}, arrive: [2]int{0, 4}, depart: [2]int{12, 18}}
)

// checkSolution verifies everything the issue asks of a solution, each with
// a computation independent of the solver: local constraints to 1e-6
// relative, voltages from the dense path-resistance matrix, and the
// distance of the aggregate from the optimum through the duality gap.
func checkSolution(t *testing.T, p *Problem, sol *Solution) {
	t.Helper()
	if !sol.Converged {
		t.Fatalf("not converged after %d iterations (gap %g)", sol.Iterations, sol.Gap)
	}
	T := p.Slots
	agg := p.Baseline()
	for i, ev := range p.EVs {
		x := sol.Schedules[i]
		sum := 0.0
		for tt, v := range x {
			in := tt >= ev.Arrive && tt < ev.Depart
			if v < -1e-6*ev.PMax || v > ev.PMax*(1+1e-6) || (!in && v != 0) {
				t.Fatalf("EV %s slot %d: %v kW outside its local set (pmax %v, window [%d,%d))", ev.ID, tt, v, ev.PMax, ev.Arrive, ev.Depart)
			}
			sum += v
			agg[tt] += v
		}
		stored := sum * ev.Efficiency * p.DT
		if math.Abs(stored-ev.Energy) > 1e-6*ev.Energy {
			t.Fatalf("EV %s stores %v kWh, wants %v", ev.ID, stored, ev.Energy)
		}
	}
	for tt := 0; tt < T; tt++ {
		if math.Abs(agg[tt]-sol.Aggregate[tt]) > 1e-6 {
			t.Fatalf("slot %d: reported aggregate %v, schedules sum to %v", tt, sol.Aggregate[tt], agg[tt])
		}
	}
	// Voltages from the dense LinDistFlow formula.
	for fi := range p.Feeders {
		f := &p.Feeders[fi]
		R := f.PathResistance()
		n := len(f.Buses)
		X := denseX(&f.Feeder)
		for tt := 0; tt < T; tt++ {
			load := make([]float64, n)
			for b := 0; b < n; b++ {
				load[b] = f.BaseP[b][tt]
			}
			for i, ev := range p.EVs {
				if ev.Feeder == fi {
					load[ev.Bus] += sol.Schedules[i][tt]
				}
			}
			for j := 1; j < n; j++ {
				v2 := f.V0 * f.V0
				for k := 1; k < n; k++ {
					v2 -= 2 / f.SBase * (R[j][k]*load[k] + X[j][k]*f.BaseQ[k][tt])
				}
				v := math.Sqrt(v2)
				if v < p.VMin-1e-5 {
					t.Fatalf("feeder %s bus %s slot %d: V = %.6f < vmin - 1e-5", f.Name, f.Buses[j].Name, tt, v)
				}
				if math.Abs(v-sol.Voltage[fi][j][tt]) > 1e-9 {
					t.Fatalf("bus %s slot %d: reported V %v, dense formula %v", f.Buses[j].Name, tt, sol.Voltage[fi][j][tt], v)
				}
			}
		}
	}
	// Distance to the optimum: f is 1-strongly convex in the aggregate, so
	// ||A - A*||_2 <= sqrt(2 (f(x) - q)) for any dual point.
	q := LowerBound(p, agg, sol.Mu)
	gap := Objective(agg) - q
	if bound := math.Sqrt(2 * math.Max(gap, 0)); bound > 0.5 {
		t.Fatalf("duality gap %v kW^2: aggregate only certified within %v kW of the optimum", gap, bound)
	}
}

func denseX(f *grid.Feeder) [][]float64 {
	g := *f
	g.Buses = append([]grid.Bus(nil), f.Buses...)
	for i := range g.Buses {
		g.Buses[i].R = f.Buses[i].X
	}
	return g.PathResistance()
}

func TestSolvePaper(t *testing.T) {
	p := ieee13Problem(1, paperFleet, 0.95)
	sol, err := Solve(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkSolution(t, p, sol)
}

// TestSolveStressedBindsVoltage is the case where the voltage limit is
// active: the solver must find multipliers and hold a bus at vmin.
func TestSolveStressedBindsVoltage(t *testing.T) {
	p := ieee13Problem(2, stressedFleet, 0.95)
	sol, err := Solve(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkSolution(t, p, sol)
	active, atLimit := 0, 0
	for b := range sol.Mu[0] {
		for tt, m := range sol.Mu[0][b] {
			if m > 0 {
				active++
				if math.Abs(sol.Voltage[0][b][tt]-p.VMin) < 1e-5 {
					atLimit++
				}
			}
		}
	}
	if active == 0 || atLimit == 0 {
		t.Fatalf("%d non-zero multipliers, %d of them at vmin: the stressed case should bind", active, atLimit)
	}
	// Without the limit the same fleet would break it: the multipliers matter.
	free, err := Solve(p, Options{VoltTol: 1, Aggregator: Exact{}, MaxIter: 5000, DualStep: 1e-300})
	if err != nil {
		t.Fatal(err)
	}
	minV := math.Inf(1)
	for b := 1; b < len(free.Voltage[0]); b++ {
		for _, v := range free.Voltage[0][b] {
			minV = math.Min(minV, v)
		}
	}
	if minV >= p.VMin {
		t.Fatalf("unconstrained valley filling keeps V >= %v; the stressed case is not stressed", minV)
	}
}

// TestSolveWaterFilling compares against the closed-form optimum of a case
// derived by hand: identical EVs plugged in all night with no binding
// voltage limit. Then any aggregate 0 <= X(t) <= N pmax splits evenly among
// the EVs, so the optimum is the water-filling A(t) = clip(L, D(t),
// D(t) + N pmax) with the level L set by the total energy, found here by
// bisection.
func TestSolveWaterFilling(t *testing.T) {
	for _, energy := range []float64{10, 30, 52} {
		t.Run(fmt.Sprint(energy), func(t *testing.T) {
			fl := fleet{perBus: 7, pmax: 6.6, energy: [2]float64{energy, energy}, arrive: [2]int{0, 0}, depart: [2]int{48, 48}}
			p := ieee13Problem(3, fl, 0.5)
			sol, err := Solve(p, Options{})
			if err != nil {
				t.Fatal(err)
			}
			d := p.Baseline()
			n := float64(len(p.EVs))
			total := 0.0
			for _, ev := range p.EVs {
				total += ev.Need(p.DT)
			}
			level := func(l float64) float64 {
				s := 0.0
				for _, v := range d {
					s += math.Min(math.Max(l, v), v+n*6.6) - v
				}
				return s
			}
			lo, hi := 0.0, 1e5
			for k := 0; k < 200; k++ {
				if mid := (lo + hi) / 2; level(mid) < total {
					lo = mid
				} else {
					hi = mid
				}
			}
			for tt, v := range d {
				want := math.Min(math.Max(lo, v), v+n*6.6)
				if math.Abs(sol.Aggregate[tt]-want) > 0.05 {
					t.Fatalf("slot %d: aggregate %.4f kW, water-filling optimum %.4f kW", tt, sol.Aggregate[tt], want)
				}
			}
		})
	}
}

// TestSolveDeterministic: the result must not depend on the number of
// workers, bit for bit.
func TestSolveDeterministic(t *testing.T) {
	p := ieee13Problem(4, stressedFleet, 0.95)
	a, err := Solve(p, Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Solve(p, Options{Workers: 7})
	if err != nil {
		t.Fatal(err)
	}
	if a.Iterations != b.Iterations || a.Objective != b.Objective {
		t.Fatalf("1 worker: %d iterations, objective %v; 7 workers: %d, %v", a.Iterations, a.Objective, b.Iterations, b.Objective)
	}
	for i := range a.Schedules {
		for tt := range a.Schedules[i] {
			if a.Schedules[i][tt] != b.Schedules[i][tt] {
				t.Fatalf("EV %d slot %d differs", i, tt)
			}
		}
	}
}

// countingAggregator checks the seam: the SO's sums come only through it.
type countingAggregator struct {
	calls  chan Group
	failAt int
}

func (c *countingAggregator) Aggregate(iter int, g Group, x []float64, slots int, sum []float64) error {
	if iter == c.failAt {
		return errors.New("link down")
	}
	c.calls <- g
	return Exact{}.Aggregate(iter, g, x, slots, sum)
}

func TestAggregatorSeam(t *testing.T) {
	p := ieee13Problem(5, paperFleet, 0.95)
	agg := &countingAggregator{calls: make(chan Group, 1<<20), failAt: -2}
	sol, err := Solve(p, Options{Aggregator: agg})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(agg.calls), 12*(sol.Iterations+1); got != want {
		t.Fatalf("%d aggregations, want one per bus per iteration plus the initial one: %d", got, want)
	}
	for len(agg.calls) > 0 {
		if g := <-agg.calls; len(g.EVs) != 7 {
			t.Fatalf("group at bus %d has %d EVs, want 7", g.Bus, len(g.EVs))
		}
	}
	_, err = Solve(p, Options{Aggregator: &countingAggregator{calls: make(chan Group, 1<<20), failAt: 3}})
	if err == nil || !errors.Is(err, err) || !contains(err.Error(), "iteration 3") || !contains(err.Error(), "link down") {
		t.Fatalf("aggregator failure not reported with its iteration and cause: %v", err)
	}
}

// A deliberately wrong aggregator (sums off by a constant) must show up as
// a worse objective: the SO really depends on the sums it is given.
type biasedAggregator struct{ bias float64 }

func (b biasedAggregator) Aggregate(iter int, g Group, x []float64, slots int, sum []float64) error {
	_ = Exact{}.Aggregate(iter, g, x, slots, sum)
	for t := range sum[:slots] {
		sum[t] += b.bias * float64(t%2)
	}
	return nil
}

func TestAggregatorMatters(t *testing.T) {
	p := ieee13Problem(6, paperFleet, 0.95)
	good, _ := Solve(p, Options{})
	bad, _ := Solve(p, Options{Aggregator: biasedAggregator{bias: 50}, MaxIter: 300})
	// Evaluate the biased run's true schedules.
	agg := p.Baseline()
	for _, x := range bad.Schedules {
		for tt, v := range x {
			agg[tt] += v
		}
	}
	if Objective(agg) <= good.Objective*(1+1e-6) {
		t.Fatalf("biased sums gave objective %v, exact sums %v: the bias had no effect", Objective(agg), good.Objective)
	}
}

func contains(s, sub string) bool {
	return len(s) >= len(sub) && (s == sub || len(sub) == 0 || indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func TestValidateNamesTheProblem(t *testing.T) {
	cases := []struct {
		edit func(p *Problem)
		want string
	}{
		{func(p *Problem) { p.EVs[3].Energy = 1000 }, "cannot be met in its window"},
		{func(p *Problem) { p.EVs[3].Bus = 99 }, "is not a load bus"},
		{func(p *Problem) { p.EVs[3].Bus = 0 }, "is not a load bus"},
		{func(p *Problem) { p.EVs[3].Efficiency = 1.2 }, "efficiency"},
		{func(p *Problem) { p.EVs[3].Arrive = 30; p.EVs[3].Depart = 20 }, "plug-in window"},
		{func(p *Problem) { p.EVs[4].ID = p.EVs[3].ID }, "used twice"},
		{func(p *Problem) { p.EVs[3].PMax = math.NaN() }, "pmax"},
		{func(p *Problem) { p.Feeders[0].V0 = 1.0 }, "the baseline alone drives bus \"652\""},
		{func(p *Problem) { p.Feeders[0].BaseP[2] = p.Feeders[0].BaseP[2][:3] }, "baseline has 3"},
	}
	for _, c := range cases {
		p := ieee13Problem(1, paperFleet, 0.95)
		c.edit(p)
		_, err := Solve(p, Options{})
		if err == nil || !errors.Is(err, ErrInvalidProblem) || indexOf(err.Error(), c.want) < 0 {
			t.Errorf("want an ErrInvalidProblem naming %q, got %v", c.want, err)
		}
	}
}
