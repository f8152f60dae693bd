package ldp

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/grid"
	"github.com/gridveil/gridveil/scenario"
)

// paperProblem is docs/ARCHITECTURE.md's reproduction set-up: IEEE 13, 84 EVs, 48
// quarter-hour slots.
func paperProblem(t testing.TB) *charging.Problem {
	t.Helper()
	spec, err := scenario.Load("ieee13-paper")
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := scenario.Build(spec, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEstimateBaselineUnbiased: over independent runs the estimated BaseP
// of every bus and slot averages to the true one, and the errors have the
// variance the report predicts (pooled: the mean of e^2/Var is 1 within
// its sampling error). Epsilon is large enough that no estimate is
// negative, so clipping at 0 plays no part (asserted).
func TestEstimateBaselineUnbiased(t *testing.T) {
	p := paperProblem(t)
	const runs, meters = 200, 100
	samplings := []Sampling{{}, {Stride: 4}}
	for _, s := range samplings {
		opt := BaselineOptions{Mechanism: Hybrid, Epsilon: 4, MetersPerBus: meters, Sampling: s}
		f := &p.Feeders[0]
		nb, T := len(f.Buses), p.Slots
		mean := make([][]float64, nb)
		for b := range mean {
			mean[b] = make([]float64, T)
		}
		var ratios []float64
		var variance [][]float64
		rng := newRand(101)
		for range runs {
			est, rep, err := EstimateBaseline(p, opt, rng)
			if err != nil {
				t.Fatal(err)
			}
			if rep.ClippedEstimates != 0 || rep.ClippedReadings != 0 {
				t.Fatalf("%v: %d estimates and %d readings clipped; the test assumes none", s, rep.ClippedEstimates, rep.ClippedReadings)
			}
			variance = rep.Variance[0]
			for b := range f.Buses {
				for tt := 0; tt < T; tt++ {
					e := est.Feeders[0].BaseP[b][tt] - f.BaseP[b][tt]
					mean[b][tt] += e / runs
					if v := variance[b][tt]; v > 0 {
						ratios = append(ratios, e*e/v)
					} else if e != 0 {
						t.Fatalf("bus %s without meters changed by %v", f.Buses[b].Name, e)
					}
				}
			}
		}
		loaded := 0
		for b := range f.Buses {
			if variance[b][0] > 0 {
				loaded++
			}
		}
		z := zFor(loaded*T + 1)
		for b := range f.Buses {
			for tt := 0; tt < T; tt++ {
				if v := variance[b][tt]; v > 0 && math.Abs(mean[b][tt]) > z*math.Sqrt(v/runs) {
					t.Errorf("%v: bus %s slot %d: mean error %.3g kW, %.1f standard errors", s, f.Buses[b].Name, tt, mean[b][tt], mean[b][tt]/math.Sqrt(v/runs))
				}
			}
		}
		m, vr, _ := sampleStats(ratios)
		seMean := math.Sqrt(vr / float64(len(ratios)))
		// Errors of different bus-slots of one run are independent, so
		// the pooled mean is a mean of independent ratios.
		if math.Abs(m-1) > zFor(1)*seMean {
			t.Errorf("%v: mean squared standardised error %.4f, want 1 +- %.4f", s, m, zFor(1)*seMean)
		}
	}
}

// TestEstimateBaselineBudget: the accountant's figures match the plan for
// every sampling, every meter reports as often as its plan allows, and the
// day budget is never exceeded.
func TestEstimateBaselineBudget(t *testing.T) {
	p := paperProblem(t)
	const meters = 20
	loaded := 9 // IEEE 13 buses with load
	cases := []struct {
		s          Sampling
		perReport  float64
		perDay     float64
		reports    int
		wantPerRep float64
		wantDay    float64
	}{
		{Sampling{}, 0, 4.8, 48, 0.1, 4.8},
		{Sampling{}, 0.5, 0, 48, 0.5, 24},
		{Sampling{Stride: 4}, 0, 2.4, 12, 0.2, 2.4},
		{Sampling{Stride: 5}, 0, 2, 10, 0.2, 2}, // ceil(48/5) = 10; offsets 3, 4 give 9
		{Sampling{Count: 3}, 0, 3, 3, 1, 3},
	}
	for _, c := range cases {
		_, rep, err := EstimateBaseline(p, BaselineOptions{Mechanism: Duchi, Epsilon: c.perReport, DayEpsilon: c.perDay, MetersPerBus: meters, Sampling: c.s}, newRand(7))
		if err != nil {
			t.Fatal(err)
		}
		if rep.Meters != loaded*meters {
			t.Errorf("%v: %d meters, want %d", c.s, rep.Meters, loaded*meters)
		}
		if math.Abs(rep.EpsilonPerReport-c.wantPerRep) > 1e-12 || rep.EpsilonPerDay > c.wantDay*(1+1e-9) || rep.EpsilonPerDay < c.wantDay*(1-1e-9) || rep.ReportsPerMeter != c.reports {
			t.Errorf("%v: per report %v (want %v), per day %v (want %v), reports per meter %d (want %d)", c.s, rep.EpsilonPerReport, c.wantPerRep, rep.EpsilonPerDay, c.wantDay, rep.ReportsPerMeter, c.reports)
		}
		lo, hi := int64(rep.Meters)*int64(c.reports-1), int64(rep.Meters)*int64(c.reports)
		if c.s.Stride == 0 || p.Slots%c.s.Stride == 0 {
			lo = hi
		}
		if rep.Reports < lo || rep.Reports > hi {
			t.Errorf("%v: %d reports, want %d..%d", c.s, rep.Reports, lo, hi)
		}
	}
}

// TestEstimateBaselineDeterministic: equal seeds give equal results, the
// input is not modified, and the copy shares no baseline memory with it.
func TestEstimateBaselineDeterministic(t *testing.T) {
	p := paperProblem(t)
	before := cloneProblem(p)
	opt := BaselineOptions{Mechanism: OUE, Levels: 8, Epsilon: 1, MetersPerBus: 15, Sampling: Sampling{Count: 10}}
	a, ra, err := EstimateBaseline(p, opt, newRand(9))
	if err != nil {
		t.Fatal(err)
	}
	b, rb, err := EstimateBaseline(p, opt, newRand(9))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) || !reflect.DeepEqual(ra, rb) {
		t.Error("same seed, different results")
	}
	if !reflect.DeepEqual(p, before) {
		t.Error("EstimateBaseline modified its input")
	}
	a.Feeders[0].BaseP[6][0] = -1
	if p.Feeders[0].BaseP[6][0] == -1 {
		t.Error("the estimate shares memory with the input")
	}
}

// TestEstimateBaselineReactive: BaseQ moves with BaseP at each bus's
// tan(phi) = Q_spot/P_spot, and capacitors stay.
func TestEstimateBaselineReactive(t *testing.T) {
	p := paperProblem(t)
	est, _, err := EstimateBaseline(p, BaselineOptions{Mechanism: Piecewise, Epsilon: 2, MetersPerBus: 30}, newRand(3))
	if err != nil {
		t.Fatal(err)
	}
	_, loads := grid.IEEE13()
	f, g := &p.Feeders[0], &est.Feeders[0]
	for b, l := range loads {
		for tt := 0; tt < p.Slots; tt++ {
			dq, dp := g.BaseQ[b][tt]-f.BaseQ[b][tt], g.BaseP[b][tt]-f.BaseP[b][tt]
			if l.P == 0 {
				if dq != 0 || dp != 0 {
					t.Errorf("bus %s has no load but changed", f.Buses[b].Name)
				}
				continue
			}
			if want := dp * l.Q / l.P; math.Abs(dq-want) > 1e-9*(1+math.Abs(want)) {
				t.Errorf("bus %s slot %d: Q moved %v for P %v; tan(phi) %v wants %v", f.Buses[b].Name, tt, dq, dp, l.Q/l.P, want)
			}
			// Q^ = tan(phi) P^ - cap
			if q := l.Q/l.P*g.BaseP[b][tt] - l.Cap; math.Abs(g.BaseQ[b][tt]-q) > 1e-9*(1+math.Abs(q)) {
				t.Errorf("bus %s slot %d: Q^ %v, want tan(phi) P^ - cap = %v", f.Buses[b].Name, tt, g.BaseQ[b][tt], q)
			}
		}
	}
}

// TestClipBias: the formula against a Monte Carlo of max(0, N(mu, s^2)),
// and EstimateBaseline's predicted bias against the measured one at an
// epsilon where many estimates are negative (the prediction assumes a
// normal estimate; with 40 meters per bus the sum is close to normal).
func TestClipBias(t *testing.T) {
	rng := newRand(77)
	cases := [][2]float64{{-1, 1}, {0, 1}, {0.5, 4}, {3, 1}, {10, 0.01}}
	z := zFor(len(cases))
	for _, c := range cases {
		mu, v := c[0], c[1]
		const n = 200000
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = math.Max(0, mu+math.Sqrt(v)*rng.NormFloat64()) - mu
		}
		m, sv, _ := sampleStats(xs)
		if want := ClipBias(mu, v); math.Abs(m-want) > z*math.Sqrt(sv/n) {
			t.Errorf("ClipBias(%v, %v) = %v, Monte Carlo %v", mu, v, want, m)
		}
	}
	if got := ClipBias(0, 1); math.Abs(got-1/math.Sqrt(2*math.Pi)) > 1e-15 {
		t.Errorf("ClipBias(0, 1) = %v", got)
	}
	if ClipBias(2, 0) != 0 || ClipBias(-2, 0) != 2 {
		t.Error("ClipBias without variance")
	}

	p := paperProblem(t)
	const runs = 150
	var bias, predicted float64
	clipped := 0
	rng = newRand(5)
	for range runs {
		est, rep, err := EstimateBaseline(p, BaselineOptions{Mechanism: Duchi, Epsilon: 0.5, MetersPerBus: 40}, rng)
		if err != nil {
			t.Fatal(err)
		}
		clipped += rep.ClippedEstimates
		predicted += rep.MeanClipBias / runs
		n := 0
		s := 0.0
		for b, row := range p.Feeders[0].BaseP {
			if rep.ClipKW[0][b] == 0 {
				continue
			}
			for tt, v := range row {
				s += est.Feeders[0].BaseP[b][tt] - v
				n++
			}
		}
		bias += s / float64(n) / runs
	}
	if clipped == 0 || predicted <= 0 {
		t.Fatalf("no estimate was clipped (%d) or no bias predicted (%v); lower epsilon", clipped, predicted)
	}
	// The mean error is the clipping bias plus zero-mean noise whose
	// standard error is at most PredictedRMSE / sqrt(runs * bus-slots).
	_, rep, _ := EstimateBaseline(p, BaselineOptions{Mechanism: Duchi, Epsilon: 0.5, MetersPerBus: 40}, rng)
	loadedSlots := 0
	for _, c := range rep.ClipKW[0] {
		if c > 0 {
			loadedSlots += p.Slots
		}
	}
	se := rep.PredictedRMSE / math.Sqrt(float64(runs*loadedSlots))
	if math.Abs(bias-predicted) > zFor(1)*se {
		t.Errorf("measured clipping bias %.3f kW, predicted %.3f kW (standard error %.3f)", bias, predicted, se)
	}
}

func TestEstimateBaselineErrors(t *testing.T) {
	p := paperProblem(t)
	good := BaselineOptions{Mechanism: Duchi, Epsilon: 1, MetersPerBus: 10}
	rng := newRand(1)
	cases := []struct {
		mod  func(o *BaselineOptions)
		want string
	}{
		{func(o *BaselineOptions) { o.Mechanism = "rappor" }, `unknown mechanism "rappor"`},
		{func(o *BaselineOptions) { o.MetersPerBus = 0 }, "0 meters per bus"},
		{func(o *BaselineOptions) { o.DayEpsilon = 2 }, "exactly one of"},
		{func(o *BaselineOptions) { o.Epsilon = 0 }, "exactly one of"},
		{func(o *BaselineOptions) { o.MaxKW = -1 }, "max_kw -1"},
		{func(o *BaselineOptions) { o.Sampling.Stride = 100 }, "stride 100"},
		{func(o *BaselineOptions) { o.Levels = 3 }, "takes no levels"},
	}
	for _, c := range cases {
		o := good
		c.mod(&o)
		if _, _, err := EstimateBaseline(p, o, rng); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", o, err, c.want)
		}
	}
	if _, _, err := EstimateBaseline(nil, good, rng); err == nil {
		t.Error("nil problem accepted")
	}
	if _, _, err := EstimateBaseline(p, good, nil); err == nil {
		t.Error("nil rng accepted")
	}
	bad := cloneProblem(p)
	bad.Slots = 0
	if _, _, err := EstimateBaseline(bad, good, rng); !errors.Is(err, charging.ErrInvalidProblem) {
		t.Errorf("invalid problem: %v", err)
	}
}

// TestCompare: a solution compared with itself has no gap; coordination
// on an LDP baseline is scored on the true grid; mismatched solutions are
// refused.
func TestCompare(t *testing.T) {
	if testing.Short() {
		t.Skip("solves the paper problem twice")
	}
	p := paperProblem(t)
	opt, err := charging.Solve(p, charging.Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Compare(p, opt, opt)
	if err != nil {
		t.Fatal(err)
	}
	if c.RelGap != 0 || c.AggregateRMSE != 0 || c.Violations != 0 || c.Objective != opt.Objective && math.Abs(c.Objective-opt.Objective) > 1e-9*opt.Objective {
		t.Errorf("self comparison: %+v (solver objective %v)", c, opt.Objective)
	}
	est, _, err := EstimateBaseline(p, BaselineOptions{Mechanism: Hybrid, Epsilon: 2, MetersPerBus: 100}, newRand(2))
	if err != nil {
		t.Fatal(err)
	}
	sol, err := charging.Solve(est, charging.Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	c, err = Compare(p, opt, sol)
	if err != nil {
		t.Fatal(err)
	}
	if c.AggregateRMSE <= 0 || c.MaxAggDiff < c.AggregateRMSE {
		t.Errorf("LDP comparison: %+v", c)
	}
	// The optimum is optimal among voltage-feasible schedules; schedules
	// that respect the limit cannot beat it.
	if c.Violations == 0 && c.RelGap < -1e-6 {
		t.Errorf("feasible LDP schedules beat the optimum: gap %v", c.RelGap)
	}
	short := *sol
	short.Schedules = sol.Schedules[:3]
	if _, err := Compare(p, opt, &short); !errors.Is(err, ErrMismatch) {
		t.Errorf("mismatched schedules: %v", err)
	}
	if _, err := Compare(p, nil, sol); !errors.Is(err, ErrMismatch) {
		t.Errorf("nil solution: %v", err)
	}
}
