package ldp

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

// allConfigs is every mechanism with the levels the tests use.
var allConfigs = []struct {
	name   Name
	levels int
}{{GRR, 2}, {GRR, 5}, {OUE, 4}, {OUE, 16}, {OUE, 63}, {OUE, 64}, {Duchi, 0}, {Piecewise, 0}, {Hybrid, 0}}

// TestPerReportVariance: the decoded report of every mechanism is unbiased
// for the clipped reading and its sample variance matches ReadingVariance,
// each within sampling error, at several epsilons and readings (including
// ones between levels and outside the clip range).
func TestPerReportVariance(t *testing.T) {
	const maxKW, n = 6.0, 60000
	epss := []float64{0.3, 1, 4}
	xs := []float64{0, 1.1, 3, 5.2, 6, 9}
	z := zFor(len(allConfigs) * len(epss) * len(xs) * 2)
	rng := newRand(11)
	buf := make([]float64, n)
	for _, c := range allConfigs {
		for _, eps := range epss {
			m := mustNew(t, Config{Mechanism: c.name, Epsilon: eps, MaxKW: maxKW, Levels: c.levels})
			for _, x := range xs {
				for i := range buf {
					buf[i] = m.Decode(m.Perturb(x, rng))
				}
				checkMoments(t, fmt.Sprintf("%s/k%d eps %v x %v", c.name, c.levels, eps, x), buf, m.Clip(x), m.ReadingVariance(x), z)
				if v := m.ReadingVariance(x); v > m.WorstReadingVariance()*(1+1e-12) {
					t.Errorf("%s eps %v x %v: variance %v above the worst case %v", c.name, eps, x, v, m.WorstReadingVariance())
				}
			}
		}
	}
}

// TestWorstVariance: WorstReadingVariance is the maximum of ReadingVariance
// over a fine grid of readings (and attained there up to the grid).
func TestWorstVariance(t *testing.T) {
	for _, c := range allConfigs {
		for _, eps := range []float64{0.2, 1, 5} {
			m := mustNew(t, Config{Mechanism: c.name, Epsilon: eps, MaxKW: 3, Levels: c.levels})
			grid := 0.0
			for i := 0; i <= 30000; i++ {
				grid = math.Max(grid, m.ReadingVariance(3*float64(i)/30000))
			}
			w := m.WorstReadingVariance()
			if grid > w*(1+1e-12) || grid < w*(1-1e-6) {
				t.Errorf("%s/k%d eps %v: worst case %.12g, grid maximum %.12g", c.name, c.levels, eps, w, grid)
			}
		}
	}
}

// population returns n readings spread over [0, maxKW] and beyond.
func population(n int, maxKW float64) []float64 {
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = maxKW * (1.1*float64(i)/float64(n-1) - 0.05) // a few clipped at each end
	}
	return xs
}

// TestSumEstimator: over many independent rounds of one population, the
// Aggregator's sum and mean are unbiased for the clipped readings and vary
// as the sum of ReadingVariance predicts; the sum equals the sum of the
// reports' Decode; and the worst-case variance bounds the true one.
func TestSumEstimator(t *testing.T) {
	const maxKW, meters, rounds = 4.0, 40, 6000
	xs := population(meters, maxKW)
	z := zFor(len(allConfigs) * 2 * 2)
	rng := newRand(5)
	sums, means := make([]float64, rounds), make([]float64, rounds)
	for _, c := range allConfigs {
		eps := 0.8
		m := mustNew(t, Config{Mechanism: c.name, Epsilon: eps, MaxKW: maxKW, Levels: c.levels})
		truth, theory := 0.0, 0.0
		for _, x := range xs {
			truth += m.Clip(x)
			theory += m.ReadingVariance(x)
		}
		a := m.NewAggregator()
		for r := range sums {
			a.Reset()
			dec := 0.0
			for _, x := range xs {
				rep := m.Perturb(x, rng)
				dec += m.Decode(rep)
				if err := a.Add(rep); err != nil {
					t.Fatal(err)
				}
			}
			s := a.Sum()
			if math.Abs(s.Value-dec) > 1e-9*(math.Abs(dec)+maxKW*meters) {
				t.Fatalf("%s: aggregator sum %.12g, sum of decoded reports %.12g", c.name, s.Value, dec)
			}
			if s.N != meters || s.Variance < theory*(1-1e-12) {
				t.Fatalf("%s: sum estimate %+v: N or worst-case variance below the exact %v", c.name, s, theory)
			}
			sums[r], means[r] = s.Value, a.Mean().Value
		}
		name := fmt.Sprintf("%s/k%d", c.name, c.levels)
		checkMoments(t, name+" sum", sums, truth, theory, z)
		checkMoments(t, name+" mean", means, truth/meters, theory/meters/meters, z)
	}
}

// TestHistogram: GRR and OUE level frequencies are unbiased for the
// expected rounded histogram, vary as sum_i P_i(1-P_i)/(n(p-q))^2 (exact for
// a fixed population), never more than FrequencyVariance at the mean
// frequency, and GRR's estimates sum to 1.
func TestHistogram(t *testing.T) {
	const maxKW, meters, rounds = 3.0, 60, 5000
	xs := population(meters, maxKW)
	cfgs := []struct {
		name   Name
		levels int
		eps    float64
	}{{GRR, 2, 1}, {GRR, 6, 1.5}, {OUE, 6, 1}, {OUE, 12, 0.5}}
	checks := 0
	for _, c := range cfgs {
		checks += 2 * c.levels
	}
	z := zFor(checks)
	rng := newRand(17)
	for _, c := range cfgs {
		m := mustNew(t, Config{Mechanism: c.name, Epsilon: c.eps, MaxKW: maxKW, Levels: c.levels})
		k := c.levels
		p, q := m.p, m.q
		probs := make([][]float64, meters) // P(rounded to level j) per meter
		expect := make([]float64, k)
		for i, x := range xs {
			probs[i] = make([]float64, k)
			if err := m.AddLevelProbs(x, probs[i]); err != nil {
				t.Fatal(err)
			}
			for j, v := range probs[i] {
				expect[j] += v / meters
			}
		}
		exactVar := make([]float64, k)
		for j := range exactVar {
			for i := range xs {
				pi := q + probs[i][j]*(p-q)
				exactVar[j] += pi * (1 - pi)
			}
			exactVar[j] /= meters * meters * (p - q) * (p - q)
			bound, _ := m.FrequencyVariance(expect[j])
			if exactVar[j] > bound/meters*(1+1e-12) {
				t.Errorf("%s level %d: exact variance %v above the FrequencyVariance bound %v", c.name, j, exactVar[j], bound/meters)
			}
		}
		est := make([][]float64, k)
		for j := range est {
			est[j] = make([]float64, rounds)
		}
		a := m.NewAggregator()
		for r := 0; r < rounds; r++ {
			a.Reset()
			for _, x := range xs {
				if err := a.Add(m.Perturb(x, rng)); err != nil {
					t.Fatal(err)
				}
			}
			h, err := a.Histogram()
			if err != nil {
				t.Fatal(err)
			}
			total := 0.0
			for j, e := range h {
				est[j][r] = e.Value
				total += e.Value
			}
			if c.name == GRR && math.Abs(total-1) > 1e-9 {
				t.Fatalf("GRR histogram sums to %v", total)
			}
		}
		for j := range est {
			checkMoments(t, fmt.Sprintf("%s/k%d level %d", c.name, k, j), est[j], expect[j], exactVar[j], z)
		}
	}
}

// TestIntervalCoverage: the 95% interval from the worst-case variance
// covers the true sum in at least 95% of rounds, up to binomial sampling
// error, for every mechanism, including small groups.
func TestIntervalCoverage(t *testing.T) {
	const maxKW, rounds = 5.0, 4000
	z := zFor(len(allConfigs) * 2)
	rng := newRand(23)
	for _, meters := range []int{30, 200} {
		xs := population(meters, maxKW)
		for _, c := range allConfigs {
			m := mustNew(t, Config{Mechanism: c.name, Epsilon: 1, MaxKW: maxKW, Levels: c.levels})
			truth := 0.0
			for _, x := range xs {
				truth += m.Clip(x)
			}
			a := m.NewAggregator()
			covered := 0
			for range rounds {
				a.Reset()
				for _, x := range xs {
					_ = a.Add(m.Perturb(x, rng))
				}
				lo, hi, err := a.Sum().Interval(0.95)
				if err != nil {
					t.Fatal(err)
				}
				if lo <= truth && truth <= hi {
					covered++
				}
			}
			cov := float64(covered) / rounds
			if floor := 0.95 - z*math.Sqrt(0.95*0.05/rounds); cov < floor {
				t.Errorf("%s/k%d, %d meters: coverage %.4f below %.4f", c.name, c.levels, meters, cov, floor)
			}
		}
	}
	if _, _, err := (Estimate{Value: 1, Variance: 1}).Interval(1); err == nil {
		t.Error("confidence 1 accepted")
	}
}

// TestAggregatorRejects: reports outside the output range are refused with
// ErrInvalidReport and change nothing; AddAll is all or nothing; Merge
// needs equal mechanisms.
func TestAggregatorRejects(t *testing.T) {
	cases := []struct {
		cfg Config
		bad []Report
	}{
		{Config{Mechanism: GRR, Epsilon: 1, MaxKW: 1, Levels: 4}, []Report{{Code: 4}, {Code: math.MaxUint64}, {Value: 1}}},
		{Config{Mechanism: OUE, Epsilon: 1, MaxKW: 1, Levels: 4}, []Report{{Code: 16}, {Code: 1 << 63}, {Value: -1}}},
		{Config{Mechanism: Duchi, Epsilon: 1, MaxKW: 1}, []Report{{Value: 0}, {Value: 2}, {Value: math.NaN()}, {Value: math.Inf(1)}, {Code: 1}}},
		{Config{Mechanism: Piecewise, Epsilon: 1, MaxKW: 1}, []Report{{Value: 4.1}, {Value: -1e300}, {Value: math.NaN()}, {Code: 3}}},
		{Config{Mechanism: Hybrid, Epsilon: 1, MaxKW: 1}, []Report{{Value: 4.1}, {Value: math.NaN()}}},
		{Config{Mechanism: Hybrid, Epsilon: 0.5, MaxKW: 1}, []Report{{Value: 0.3}, {Value: 4}}}, // pure Duchi below EpsilonStar
	}
	rng := newRand(3)
	for _, c := range cases {
		m := mustNew(t, c.cfg)
		a := m.NewAggregator()
		good := m.Perturb(0.4, rng)
		if err := a.Add(good); err != nil {
			t.Fatalf("%s: valid report refused: %v", c.cfg.Mechanism, err)
		}
		before := a.Sum()
		for _, r := range c.bad {
			if err := a.Add(r); !errors.Is(err, ErrInvalidReport) {
				t.Errorf("%s: Add(%+v) = %v, want ErrInvalidReport", c.cfg.Mechanism, r, err)
			}
			if err := a.AddAll([]Report{good, r, good}); err == nil || !strings.Contains(err.Error(), "report 1") {
				t.Errorf("%s: AddAll with %+v at index 1: %v", c.cfg.Mechanism, r, err)
			}
		}
		if after := a.Sum(); after != before {
			t.Errorf("%s: rejected reports changed the sum from %+v to %+v", c.cfg.Mechanism, before, after)
		}
		// AddAll of valid reports equals Add one by one; Merge adds counts.
		b, cc := m.NewAggregator(), m.NewAggregator()
		batch := []Report{good, m.Perturb(0.9, rng), m.Perturb(0, rng)}
		if err := b.AddAll(batch); err != nil {
			t.Fatal(err)
		}
		for _, r := range batch {
			_ = cc.Add(r)
		}
		if b.Sum() != cc.Sum() {
			t.Errorf("%s: AddAll %+v, Add %+v", c.cfg.Mechanism, b.Sum(), cc.Sum())
		}
		if err := a.Merge(b); err != nil || a.Count() != 4 {
			t.Errorf("%s: Merge: %v, count %d", c.cfg.Mechanism, err, a.Count())
		}
	}
	x := mustNew(t, Config{Mechanism: Duchi, Epsilon: 1, MaxKW: 1}).NewAggregator()
	y := mustNew(t, Config{Mechanism: Duchi, Epsilon: 2, MaxKW: 1}).NewAggregator()
	if err := x.Merge(y); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("merging different epsilons: %v", err)
	}
	if e := x.Mean(); !math.IsNaN(e.Value) {
		t.Errorf("mean of nothing: %v", e.Value)
	}
	g := mustNew(t, Config{Mechanism: GRR, Epsilon: 1, MaxKW: 1}).NewAggregator()
	if _, err := g.Histogram(); !errors.Is(err, ErrInvalidReport) {
		t.Errorf("histogram of nothing: %v", err)
	}
}

// TestNoAllocs: the hot paths allocate nothing.
func TestNoAllocs(t *testing.T) {
	rng := newRand(6)
	for _, c := range allConfigs {
		m := mustNew(t, Config{Mechanism: c.name, Epsilon: 1, MaxKW: 2, Levels: c.levels})
		a := m.NewAggregator()
		reps := make([]Report, 64)
		buf := make([]byte, 0, MaxReportBytes)
		allocs := testing.AllocsPerRun(200, func() {
			for i := range reps {
				reps[i] = m.Perturb(float64(i)/32, rng)
				_ = a.Add(reps[i])
			}
			_ = a.AddAll(reps)
			buf = m.AppendReport(buf[:0], reps[0])
			_, _ = m.DecodeReport(buf)
			_ = a.Sum()
			_ = m.Decode(reps[1])
			_ = m.ReadingVariance(0.7)
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per run", c.name, allocs)
		}
	}
}
