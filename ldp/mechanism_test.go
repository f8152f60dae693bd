package ldp

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

func mustNew(t testing.TB, cfg Config) *Mechanism {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPaperVariances asserts the per-user variances at epsilon = 1 that
// docs/ARCHITECTURE.md C5 quotes, from this package's formulas, and checks each
// formula against the closed form in its source.
func TestPaperVariances(t *testing.T) {
	e := math.E
	cases := []struct {
		what   string
		got    func() float64
		want   float64 // docs/ARCHITECTURE.md, two decimals
		closed float64 // the source's closed form at eps = 1
	}{
		{"Duchi at t = 0", func() float64 { return mustNew(t, Config{Mechanism: Duchi, Epsilon: 1, MaxKW: 1}).ValueVariance(0) }, 4.68,
			math.Pow((e+1)/(e-1), 2)},
		{"piecewise at t = 1", func() float64 { return mustNew(t, Config{Mechanism: Piecewise, Epsilon: 1, MaxKW: 1}).ValueVariance(1) }, 5.22,
			1/(math.Sqrt(e)-1) + (math.Sqrt(e)+3)/(3*math.Pow(math.Sqrt(e)-1, 2))},
		{"hybrid, worst case", func() float64 {
			m := mustNew(t, Config{Mechanism: Hybrid, Epsilon: 1, MaxKW: 2})
			return m.WorstReadingVariance() / 1 // MaxKW 2: kW units equal [-1, 1] units
		}, 4.29,
			(math.Sqrt(e)+3)/(3*math.Sqrt(e)*(math.Sqrt(e)-1)) + math.Pow(e+1, 2)/(math.Sqrt(e)*math.Pow(e-1, 2))},
		{"OUE frequency at f = 0", func() float64 {
			v, _ := mustNew(t, Config{Mechanism: OUE, Epsilon: 1, MaxKW: 1, Levels: 16}).FrequencyVariance(0)
			return v
		}, 3.68, 4 * e / math.Pow(e-1, 2)},
		{"binary RR frequency at f = 0", func() float64 {
			v, _ := mustNew(t, Config{Mechanism: GRR, Epsilon: 1, MaxKW: 1, Levels: 2}).FrequencyVariance(0)
			return v
		}, 0.92, e / math.Pow(e-1, 2)},
	}
	for _, c := range cases {
		got := c.got()
		if math.Abs(got-c.want) > 0.005 {
			t.Errorf("%s: %.4f, docs/ARCHITECTURE.md says %.2f", c.what, got, c.want)
		}
		tol := 1e-12
		if strings.HasPrefix(c.what, "OUE") {
			tol = 1e-8 // OUE realises q to 2^-32 (rounded up); see TestLDPDiscrete
		}
		if math.Abs(got-c.closed) > tol*c.closed {
			t.Errorf("%s: %.15g, the source's closed form gives %.15g", c.what, got, c.closed)
		}
	}
	// Hybrid's variance does not depend on the input above EpsilonStar.
	m := mustNew(t, Config{Mechanism: Hybrid, Epsilon: 1, MaxKW: 1})
	for _, tt := range []float64{-1, -0.5, 0, 0.3, 1} {
		if v := m.ValueVariance(tt); math.Abs(v-4.288992493281812) > 1e-12 {
			t.Errorf("hybrid variance at t = %v: %.15g, want the constant 4.288992493281812", tt, v)
		}
	}
}

// TestEpsilonStar: the hybrid's switch point equalises PM and Duchi at
// t = 0, and alpha follows it.
func TestEpsilonStar(t *testing.T) {
	pm := mustNew(t, Config{Mechanism: Piecewise, Epsilon: EpsilonStar, MaxKW: 1})
	du := mustNew(t, Config{Mechanism: Duchi, Epsilon: EpsilonStar, MaxKW: 1})
	if a, b := pm.ValueVariance(0), du.ValueVariance(0); math.Abs(a-b) > 1e-9*a {
		t.Errorf("at EpsilonStar PM(0) = %.15g, Duchi(0) = %.15g", a, b)
	}
	for _, c := range []struct {
		eps  float64
		want float64
	}{{0.3, 0}, {EpsilonStar, 0}, {0.62, 1 - math.Exp(-0.31)}, {1, 1 - math.Exp(-0.5)}, {8, 1 - math.Exp(-4)}} {
		m := mustNew(t, Config{Mechanism: Hybrid, Epsilon: c.eps, MaxKW: 1})
		if math.Abs(m.Alpha()-c.want) > 1e-15 {
			t.Errorf("eps %v: alpha %v, want %v", c.eps, m.Alpha(), c.want)
		}
		// The hybrid's worst case is never above either component's.
		w := m.WorstReadingVariance() * 4 // MaxKW 1: [-1,1] units are 4x kW^2
		p := mustNew(t, Config{Mechanism: Piecewise, Epsilon: c.eps, MaxKW: 1}).WorstReadingVariance() * 4
		d := mustNew(t, Config{Mechanism: Duchi, Epsilon: c.eps, MaxKW: 1}).WorstReadingVariance() * 4
		if w > math.Min(p, d)*(1+1e-12) {
			t.Errorf("eps %v: hybrid worst case %.6g exceeds min(PM %.6g, Duchi %.6g)", c.eps, w, p, d)
		}
	}
}

// TestBinaryRRIsDuchi: binary RR after randomised rounding has Duchi's
// output law, hence the same variance at every reading.
func TestBinaryRRIsDuchi(t *testing.T) {
	for _, eps := range []float64{0.1, 1, 3} {
		g := mustNew(t, Config{Mechanism: GRR, Epsilon: eps, MaxKW: 5, Levels: 2})
		d := mustNew(t, Config{Mechanism: Duchi, Epsilon: eps, MaxKW: 5})
		for x := 0.0; x <= 5; x += 0.25 {
			if a, b := g.ReadingVariance(x), d.ReadingVariance(x); math.Abs(a-b) > 1e-9*b {
				t.Errorf("eps %v x %v: binary RR %.12g, Duchi %.12g", eps, x, a, b)
			}
		}
	}
}

func TestNewErrors(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{Mechanism: "laplace", Epsilon: 1, MaxKW: 1}, `unknown mechanism "laplace"`},
		{Config{Mechanism: Duchi, Epsilon: 0, MaxKW: 1}, "epsilon 0 is outside"},
		{Config{Mechanism: Duchi, Epsilon: math.NaN(), MaxKW: 1}, "epsilon NaN"},
		{Config{Mechanism: Duchi, Epsilon: 101, MaxKW: 1}, "epsilon 101"},
		{Config{Mechanism: Duchi, Epsilon: 1, MaxKW: 0}, "max_kw 0"},
		{Config{Mechanism: Duchi, Epsilon: 1, MaxKW: math.Inf(1)}, "max_kw +Inf"},
		{Config{Mechanism: Duchi, Epsilon: 1, MaxKW: 1, Levels: 4}, "takes no levels (got 4)"},
		{Config{Mechanism: GRR, Epsilon: 1, MaxKW: 1, Levels: 1}, "grr with 1 levels"},
		{Config{Mechanism: OUE, Epsilon: 1, MaxKW: 1, Levels: 65}, "oue with 65 levels; give 2 to 64"},
		{Config{Mechanism: GRR, Epsilon: 1, MaxKW: 1, Levels: MaxGRRLevels + 1}, "give 2 to 65536"},
	}
	for _, c := range cases {
		_, err := New(c.cfg)
		if err == nil || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want ErrInvalidConfig containing %q", c.cfg, err, c.want)
		}
	}
	for _, s := range []string{"GRR", " oue", "Hybrid"} {
		if _, err := ParseName(s); err != nil {
			t.Errorf("ParseName(%q): %v", s, err)
		}
	}
	d := mustNew(t, Config{Mechanism: Duchi, Epsilon: 1, MaxKW: 1})
	if _, err := d.FrequencyVariance(0); !errors.Is(err, ErrNotHistogram) {
		t.Errorf("Duchi FrequencyVariance: %v", err)
	}
	if err := d.AddLevelProbs(0, nil); !errors.Is(err, ErrNotHistogram) {
		t.Errorf("Duchi AddLevelProbs: %v", err)
	}
	if h, err := d.NewAggregator().Histogram(); h != nil || !errors.Is(err, ErrNotHistogram) {
		t.Errorf("Duchi Histogram: %v", err)
	}
}

// TestClip: out-of-range and NaN readings are clipped, never rejected.
func TestClip(t *testing.T) {
	rng := newRand(1)
	for _, name := range Names() {
		m := mustNew(t, Config{Mechanism: name, Epsilon: 1, MaxKW: 3})
		for _, x := range []float64{math.NaN(), math.Inf(-1), -5, 0, 1.5, 3, 7, math.Inf(1)} {
			c := m.Clip(x)
			if !(c >= 0 && c <= 3) {
				t.Errorf("%s: Clip(%v) = %v", name, x, c)
			}
			for range 50 {
				if err := m.ValidateReport(m.Perturb(x, rng)); err != nil {
					t.Errorf("%s: Perturb(%v): %v", name, x, err)
				}
			}
			if v := m.ReadingVariance(x); !(v >= 0) || math.IsInf(v, 0) {
				t.Errorf("%s: ReadingVariance(%v) = %v", name, x, v)
			}
		}
	}
}

// exactDiscrete returns the exact output law of a GRR or OUE mechanism for
// reading x, written from the definitions in the package documentation:
// randomised rounding to levels a, a+1, then GRR's p/q or OUE's per-bit
// p/q. The outcome index is the level (GRR) or the code (OUE). OUE's q is
// oueQ, the probability the implementation realises.
func exactDiscrete(name Name, eps, maxKW float64, k int, x, oueQ float64) []float64 {
	ee := math.Exp(eps)
	pos := math.Min(math.Max(x, 0), maxKW) / maxKW * float64(k-1)
	a := min(int(pos), k-2)
	up := pos - float64(a)
	round := map[int]float64{a: 1 - up, a + 1: up}
	if name == GRR {
		p, q := ee/(ee+float64(k-1)), 1/(ee+float64(k-1))
		out := make([]float64, k)
		for l, w := range round {
			for j := range out {
				if j == l {
					out[j] += w * p
				} else {
					out[j] += w * q
				}
			}
		}
		return out
	}
	p, q := 0.5, oueQ
	out := make([]float64, 1<<k)
	for l, w := range round {
		for code := range out {
			pr := w
			for j := 0; j < k; j++ {
				pj := q
				if j == l {
					pj = p
				}
				if code>>j&1 == 1 {
					pr *= pj
				} else {
					pr *= 1 - pj
				}
			}
			out[code] += pr
		}
	}
	return out
}

// TestLDPDiscrete: for GRR, OUE and Duchi the exact output laws of every
// pair of inputs on a grid (levels and points between them) have ratio at
// most e^eps, the bound is attained, and Perturb samples exactly that law
// (chi-square goodness of fit), so the bound is about the code that runs.
func TestLDPDiscrete(t *testing.T) {
	type mc struct {
		name Name
		k    int
	}
	mechs := []mc{{GRR, 2}, {GRR, 3}, {GRR, 7}, {OUE, 2}, {OUE, 3}, {OUE, 5}, {OUE, 6}, {Duchi, 0}}
	epss := []float64{0.05, 0.5, 1, 2.5, 6}
	const maxKW = 4.0
	xs := []float64{}
	for i := 0; i <= 48; i++ {
		xs = append(xs, maxKW*float64(i)/48)
	}
	law := func(c mc, eps, x float64) []float64 {
		if c.name == Duchi {
			tt := 2*x/maxKW - 1
			hi := 0.5 + tt*(math.Exp(eps)-1)/(2*(math.Exp(eps)+1))
			return []float64{1 - hi, hi}
		}
		q := 0.0
		if c.name == OUE {
			// The realised q: a multiple of 2^-32 at or just above the
			// paper's 1/(e^eps+1), which can only tighten the bound.
			q = mustNew(t, Config{Mechanism: OUE, Epsilon: eps, MaxKW: maxKW, Levels: c.k}).q
			if paper := 1 / (math.Exp(eps) + 1); q < paper || q-paper > 0x1p-32 {
				t.Fatalf("eps %v: OUE realises q = %.17g, the paper's is %.17g", eps, q, paper)
			}
		}
		return exactDiscrete(c.name, eps, maxKW, c.k, x, q)
	}
	checks := len(mechs) * len(epss) * 3
	alpha := familyAlpha / float64(checks)
	for _, c := range mechs {
		for _, eps := range epss {
			t.Run(fmt.Sprintf("%s-k%d-eps%g", c.name, c.k, eps), func(t *testing.T) {
				laws := make([][]float64, len(xs))
				for i, x := range xs {
					laws[i] = law(c, eps, x)
					s := 0.0
					for _, v := range laws[i] {
						s += v
					}
					if math.Abs(s-1) > 1e-12 {
						t.Fatalf("law at x = %v sums to %v", x, s)
					}
				}
				worst := 0.0
				for i := range laws {
					for j := range laws {
						for o := range laws[i] {
							worst = math.Max(worst, laws[i][o]/laws[j][o])
						}
					}
				}
				if worst > math.Exp(eps)*(1+1e-12) {
					t.Errorf("max output probability ratio %.15g exceeds e^eps = %.15g", worst, math.Exp(eps))
				}
				tight := 1e-9
				if c.name == OUE { // realised q shifts eps by at most 2^-32/(q(1-q))
					q := 1 / (math.Exp(eps) + 1)
					tight = 0x1p-32 / (q * (1 - q))
				}
				if worst < math.Exp(eps)*(1-tight) {
					t.Errorf("max ratio %.15g below e^eps = %.15g: the mechanism is not the one documented", worst, math.Exp(eps))
				}
				// Goodness of fit of Perturb at three readings.
				m := mustNew(t, Config{Mechanism: c.name, Epsilon: eps, MaxKW: maxKW, Levels: c.k})
				rng := newRand(uint64(7 + c.k))
				for _, x := range []float64{0, 1.3, maxKW} {
					want := law(c, eps, x)
					const n = 60000
					counts := make([]float64, len(want))
					for range n {
						r := m.Perturb(x, rng)
						if c.name == Duchi {
							if r.Value > 0 {
								counts[1]++
							} else {
								counts[0]++
							}
						} else {
							counts[r.Code]++
						}
					}
					// Outcomes expected fewer than 5 times are pooled, as the
					// chi-square approximation requires.
					chi, bins, poolE, poolO := 0.0, 0, 0.0, 0.0
					for o, w := range want {
						e := w * n
						if e < 5 {
							poolE, poolO = poolE+e, poolO+counts[o]
							continue
						}
						chi += (counts[o] - e) * (counts[o] - e) / e
						bins++
					}
					if poolE > 0 {
						chi += (poolO - poolE) * (poolO - poolE) / poolE
						bins++
					}
					if crit := chiSquareCritical(bins-1, alpha); chi > crit {
						t.Errorf("x = %v: Perturb's outputs do not follow the exact law: chi-square %.1f > %.1f (df %d)", x, chi, crit, bins-1)
					}
				}
			})
		}
	}
}

// pmLaw is the piecewise mechanism's output density and CDF for input t,
// written from Wang et al. (ICDE 2019) Alg. 2.
func pmLaw(eps, t float64) (density, cdf func(y float64) float64) {
	h := math.Exp(eps / 2)
	C := (h + 1) / (h - 1)
	pd := (math.Exp(eps) - h) / (2*h + 2)
	lo := pd / math.Exp(eps)
	l := (C+1)/2*t - (C-1)/2
	r := l + C - 1
	density = func(y float64) float64 {
		switch {
		case y < -C || y > C:
			return 0
		case y >= l && y <= r:
			return pd
		}
		return lo
	}
	cdf = func(y float64) float64 {
		y = math.Min(math.Max(y, -C), C)
		return lo*(math.Min(y, l)+C) + pd*math.Max(0, math.Min(y, r)-l) + lo*math.Max(0, y-r)
	}
	return density, cdf
}

// TestLDPContinuous: the piecewise density ratio for every pair of inputs
// on a grid, at every point of a fine output grid (including the interval
// ends), is at most e^eps; the hybrid's atoms and density each obey the
// bound; and Perturb samples these laws (Kolmogorov-Smirnov).
func TestLDPContinuous(t *testing.T) {
	epss := []float64{0.1, 0.5, EpsilonStar, 1, 2, 6}
	ts := []float64{}
	for i := 0; i <= 40; i++ {
		ts = append(ts, -1+float64(i)/20)
	}
	checks := len(epss) * 2 * 3
	alpha := familyAlpha / float64(checks)
	for _, eps := range epss {
		h := math.Exp(eps / 2)
		C := (h + 1) / (h - 1)
		ys := []float64{-C, C}
		for i := 0; i <= 4000; i++ {
			ys = append(ys, -C+2*C*float64(i)/4000)
		}
		dens := make([]func(float64) float64, len(ts))
		for i, tt := range ts {
			dens[i], _ = pmLaw(eps, tt)
			l := (C+1)/2*tt - (C-1)/2
			ys = append(ys, l, l+C-1, math.Nextafter(l, -C), math.Nextafter(l+C-1, C))
		}
		worst := 0.0
		for i := range ts {
			for j := range ts {
				for _, y := range ys {
					a, b := dens[i](y), dens[j](y)
					if a == 0 && b == 0 {
						continue
					}
					worst = math.Max(worst, a/b)
				}
			}
		}
		if worst > math.Exp(eps)*(1+1e-12) {
			t.Errorf("eps %v: piecewise density ratio %.15g exceeds e^eps %.15g", eps, worst, math.Exp(eps))
		}
		// Hybrid: Duchi's atoms, scaled by 1 - alpha, against each other.
		hm := mustNew(t, Config{Mechanism: Hybrid, Epsilon: eps, MaxKW: 2})
		a := hm.Alpha()
		hi := func(tt float64) float64 { return 0.5 + tt*(math.Exp(eps)-1)/(2*(math.Exp(eps)+1)) }
		for _, t1 := range ts {
			for _, t2 := range ts {
				for _, pr := range [][2]float64{{hi(t1), hi(t2)}, {1 - hi(t1), 1 - hi(t2)}} {
					if r := ((1 - a) * pr[0]) / ((1 - a) * pr[1]); r > math.Exp(eps)*(1+1e-12) {
						t.Errorf("eps %v: hybrid atom ratio %v at t = %v, %v", eps, r, t1, t2)
					}
				}
			}
		}
		// Goodness of fit: PM and HM samples against the exact CDFs.
		pm := mustNew(t, Config{Mechanism: Piecewise, Epsilon: eps, MaxKW: 2})
		rng := newRand(uint64(eps * 1000))
		for _, tt := range []float64{-1, 0.35, 1} {
			const n = 40000
			x := 1 + tt // MaxKW 2: reading 1 + t maps to t
			_, cdf := pmLaw(eps, tt)
			ys := make([]float64, n)
			for i := range ys {
				ys[i] = pm.Perturb(x, rng).Value
			}
			if d, crit := ksStatistic(ys, cdf), ksCritical(n, alpha); d > crit {
				t.Errorf("eps %v t %v: piecewise samples: KS %.5f > %.5f", eps, tt, d, crit)
			}
			// The atoms sit at the mechanism's +-B (1/tanh(eps/2), which
			// may differ from the paper's formula in the last bits).
			_, B := mustNew(t, Config{Mechanism: Duchi, Epsilon: eps, MaxKW: 2}).OutputRange()
			if paper := (math.Exp(eps) + 1) / (math.Exp(eps) - 1); math.Abs(B-paper) > 1e-12*paper {
				t.Errorf("eps %v: B = %.17g, the paper's (e^eps+1)/(e^eps-1) = %.17g", eps, B, paper)
			}
			hcdf := func(y float64) float64 {
				f := 0.0
				if y >= -B {
					f += 1 - hi(tt)
				}
				if y >= B {
					f += hi(tt)
				}
				return a*cdf(y) + (1-a)*f
			}
			for i := range ys {
				ys[i] = hm.Perturb(x, rng).Value
			}
			if d, crit := ksStatistic(ys, hcdf), ksCritical(n, alpha); d > crit {
				t.Errorf("eps %v t %v: hybrid samples: KS %.5f > %.5f", eps, tt, d, crit)
			}
		}
	}
}

// TestExtremeEpsilons: at the ends of the allowed range every mechanism
// still builds, reports valid and finite values, and has finite variances
// with the right ordering.
func TestExtremeEpsilons(t *testing.T) {
	rng := newRand(2)
	for _, c := range []struct {
		name   Name
		levels int
	}{{GRR, 2}, {GRR, 1000}, {OUE, 64}, {Duchi, 0}, {Piecewise, 0}, {Hybrid, 0}} {
		lowV := 0.0
		for _, eps := range []float64{MinEpsilon, 1, MaxEpsilon} {
			m, err := New(Config{Mechanism: c.name, Epsilon: eps, MaxKW: 7, Levels: c.levels})
			if err != nil {
				t.Fatalf("%s eps %v: %v", c.name, eps, err)
			}
			w := m.WorstReadingVariance()
			if !(w > 0) || math.IsInf(w, 0) || (lowV > 0 && w >= lowV) {
				t.Errorf("%s/k%d eps %v: worst variance %v (at a smaller epsilon %v)", c.name, c.levels, eps, w, lowV)
			}
			lowV = w
			for _, x := range []float64{0, 3.3, 7} {
				r := m.Perturb(x, rng)
				if err := m.ValidateReport(r); err != nil {
					t.Errorf("%s eps %v: %v", c.name, eps, err)
				}
				if d := m.Decode(r); math.IsNaN(d) || math.IsInf(d, 0) {
					t.Errorf("%s eps %v: Decode %v", c.name, eps, d)
				}
			}
		}
	}
}
