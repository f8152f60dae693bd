package ldp

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
)

// Name identifies a mechanism.
type Name string

// The mechanisms of docs/ARCHITECTURE.md C5; see the package documentation for their
// definitions, sources and privacy proofs.
const (
	GRR       Name = "grr"       // generalised randomized response over k levels
	OUE       Name = "oue"       // optimised unary encoding over k levels
	Duchi     Name = "duchi"     // Duchi et al. (2018), output +-B
	Piecewise Name = "piecewise" // piecewise mechanism (Wang et al. 2019)
	Hybrid    Name = "hybrid"    // hybrid of piecewise and Duchi (Wang et al. 2019)
)

// Names returns every mechanism, in the order reports and figures use.
func Names() []Name { return []Name{GRR, OUE, Duchi, Piecewise, Hybrid} }

// ParseName returns the mechanism called s (case-insensitive).
func ParseName(s string) (Name, error) {
	n := Name(strings.ToLower(strings.TrimSpace(s)))
	for _, m := range Names() {
		if n == m {
			return m, nil
		}
	}
	return "", fmt.Errorf("%w: unknown mechanism %q; choose one of %s", ErrInvalidConfig, s, nameList())
}

func nameList() string {
	var b strings.Builder
	for i, m := range Names() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(m))
	}
	return b.String()
}

// Discrete reports whether the mechanism reports a level (GRR, OUE) and so
// supports histograms.
func (n Name) Discrete() bool { return n == GRR || n == OUE }

// Limits and defaults of a Config.
const (
	// MinEpsilon and MaxEpsilon bound the per-report epsilon. Below 1e-6
	// a single report's variance exceeds 10^12 times the squared range;
	// above 30 the probability of a misreport (about e^-eps) approaches
	// what a float64 uniform can realise, and the reports release the
	// readings in all but name anyway.
	MinEpsilon = 1e-6
	MaxEpsilon = 30
	// MaxGRRLevels and MaxOUELevels bound k. An OUE report is one 64-bit word.
	MaxGRRLevels = 1 << 16
	MaxOUELevels = 64
	// DefaultGRRLevels is binary randomized response: the scheme of seed 004
	// and, for sums, the GRR with the smallest variance.
	DefaultGRRLevels = 2
	// DefaultOUELevels gives a 16-level histogram.
	DefaultOUELevels = 16
)

// EpsilonStar is the epsilon above which the hybrid mechanism mixes in the
// piecewise mechanism: the root of Var_PM(0) = Var_Duchi(0), i.e.
// (e^(e/2)+3)/(3(e^(e/2)-1)^2) = ((e^e+1)/(e^e-1))^2 (Wang et al., ICDE 2019,
// where it is given as 0.61).
const EpsilonStar = 0.6093524930273088

// ErrInvalidConfig is wrapped by every error New and the other
// constructors return for unusable parameters.
var ErrInvalidConfig = errors.New("invalid LDP configuration")

// ErrNotHistogram is returned by histogram methods of continuous mechanisms.
var ErrNotHistogram = errors.New("mechanism reports no levels; histograms need grr or oue")

// Config selects and parameterises a mechanism.
type Config struct {
	Mechanism Name
	Epsilon   float64 // privacy loss of one report, in [MinEpsilon, MaxEpsilon]
	MaxKW     float64 // readings are clipped to [0, MaxKW], kW; public
	Levels    int     // GRR and OUE: number of levels k >= 2 (0: the default); others: must be 0
}

// Report is one perturbed reading as a meter sends it. Which field carries
// it depends on the mechanism:
//
//	duchi, piecewise, hybrid: Value, the perturbed value in [-C, C]
//	grr:                      Code, the reported level, 0 <= Code < k
//	oue:                      Code, bit j set iff level j's bit is 1
//
// The other field is zero.
type Report struct {
	Value float64
	Code  uint64
}

// Mechanism is a configured epsilon-LDP mechanism: the meter side
// (Perturb), the SO side (Decode, NewAggregator) and their exact variances.
// It is immutable and safe for concurrent use.
type Mechanism struct {
	name  Name
	eps   float64
	maxKW float64
	k     int

	// continuous mechanisms
	b     float64 // Duchi: output magnitude B
	slope float64 // Duchi: (e^eps-1)/(e^eps+1) = 1/B
	c     float64 // PM: output range [-C, C]
	pIn   float64 // PM: probability of the central interval, e^(eps/2)/(e^(eps/2)+1)
	pd    float64 // PM: density on the central interval
	alpha float64 // hybrid: probability of PM
	atoms bool    // reports are exactly +-B (Duchi, or hybrid with alpha = 0)

	// discrete mechanisms
	p, q     float64 // probability of reporting the true level (bit) and a given other one
	q32      uint32  // OUE: q * 2^32, a threshold on a uniform uint32
	step     float64 // kW between levels
	sumG     float64 // G = sum_j g_j
	sumG2    float64 // sum_j g_j^2
	worstVar float64 // WorstReadingVariance
}

// New validates cfg and returns the mechanism.
func New(cfg Config) (*Mechanism, error) {
	name, err := ParseName(string(cfg.Mechanism))
	if err != nil {
		return nil, err
	}
	eps := cfg.Epsilon
	if !(eps >= MinEpsilon && eps <= MaxEpsilon) {
		return nil, fmt.Errorf("%w: epsilon %v is outside [%g, %g]; give the privacy loss of one report, e.g. 1", ErrInvalidConfig, eps, float64(MinEpsilon), float64(MaxEpsilon))
	}
	if !(cfg.MaxKW > 0) || math.IsInf(cfg.MaxKW, 0) {
		return nil, fmt.Errorf("%w: clip bound max_kw %v must be a positive number of kW (a meter's largest plausible reading)", ErrInvalidConfig, cfg.MaxKW)
	}
	m := &Mechanism{name: name, eps: eps, maxKW: cfg.MaxKW}
	switch name {
	case GRR, OUE:
		k, most := cfg.Levels, MaxGRRLevels
		if name == OUE {
			most = MaxOUELevels
		}
		if k == 0 {
			k = DefaultGRRLevels
			if name == OUE {
				k = DefaultOUELevels
			}
		}
		if k < 2 || k > most {
			return nil, fmt.Errorf("%w: %s with %d levels; give 2 to %d levels (or 0 for the default)", ErrInvalidConfig, name, cfg.Levels, most)
		}
		m.k = k
		ee := math.Exp(eps)
		if name == GRR {
			m.p, m.q = ee/(ee+float64(k-1)), 1/(ee+float64(k-1))
		} else {
			// q is realised exactly as a multiple of 2^-32, rounded up so
			// that p(1-q)/((1-p)q) stays <= e^eps; the estimators use the
			// realised q, so they stay exactly unbiased.
			m.q32 = uint32(math.Ceil(math.Ldexp(1/(ee+1), 32)))
			if m.q32 >= 1<<31 {
				return nil, fmt.Errorf("%w: epsilon %g is too small for oue's 32-bit probabilities; use a larger epsilon", ErrInvalidConfig, eps)
			}
			m.p, m.q = 0.5, math.Ldexp(float64(m.q32), -32)
		}
		m.step = cfg.MaxKW / float64(k-1)
		for j := 0; j < k; j++ {
			g := m.level(j)
			m.sumG += g
			m.sumG2 += g * g
		}
	default:
		if cfg.Levels != 0 {
			return nil, fmt.Errorf("%w: %s works on [-1, 1] and takes no levels (got %d); levels are for grr and oue", ErrInvalidConfig, name, cfg.Levels)
		}
		m.slope = math.Tanh(eps / 2)
		m.b = 1 / m.slope
		m.c = 1 / math.Tanh(eps/4)
		h := math.Exp(eps / 2)
		m.pIn = h / (h + 1)
		m.pd = (math.Exp(eps) - h) / (2*h + 2)
		if name == Hybrid && eps > EpsilonStar {
			m.alpha = -math.Expm1(-eps / 2)
		}
		m.atoms = name == Duchi || (name == Hybrid && m.alpha == 0)
	}
	m.worstVar = m.computeWorstVariance()
	return m, nil
}

// Name returns the mechanism's name.
func (m *Mechanism) Name() Name { return m.name }

// Epsilon returns the privacy loss of one report.
func (m *Mechanism) Epsilon() float64 { return m.eps }

// MaxKW returns the clip bound.
func (m *Mechanism) MaxKW() float64 { return m.maxKW }

// Levels returns k for GRR and OUE, 0 for the continuous mechanisms.
func (m *Mechanism) Levels() int { return m.k }

// Level returns the reading g_j = j*MaxKW/(k-1) that level j stands for, kW
// (NaN outside 0..k-1 or for a continuous mechanism).
func (m *Mechanism) Level(j int) float64 {
	if m.k == 0 || j < 0 || j >= m.k {
		return math.NaN()
	}
	return m.level(j)
}

func (m *Mechanism) level(j int) float64 {
	if j == m.k-1 {
		return m.maxKW // exact top level
	}
	return float64(j) * m.step
}

// Alpha returns the hybrid mechanism's probability of using PM (0 for the
// other mechanisms).
func (m *Mechanism) Alpha() float64 { return m.alpha }

// OutputRange returns the smallest and largest Value a continuous mechanism
// can report: +-B for Duchi (and for hybrid at epsilon <= EpsilonStar), +-C
// for piecewise and hybrid. Both are 0 for GRR and OUE.
func (m *Mechanism) OutputRange() (lo, hi float64) {
	switch {
	case m.atoms:
		return -m.b, m.b
	case m.name == Piecewise || m.name == Hybrid:
		return -m.c, m.c
	}
	return 0, 0
}

// Clip returns x clipped to [0, MaxKW]; NaN becomes 0.
func (m *Mechanism) Clip(x float64) float64 {
	if !(x > 0) { // also NaN
		return 0
	}
	if x > m.maxKW {
		return m.maxKW
	}
	return x
}

// ToDomain maps a reading to [-1, 1]: t = 2 clip(x)/MaxKW - 1.
func (m *Mechanism) ToDomain(x float64) float64 {
	return math.Min(2*m.Clip(x)/m.maxKW-1, 1)
}

// Perturb is the meter's side: it clips the reading x (kW), maps it to the
// mechanism's domain and returns the epsilon-LDP report. It draws from rng
// only, never allocates, and is safe for concurrent use with distinct rngs.
func (m *Mechanism) Perturb(x float64, rng *rand.Rand) Report {
	switch m.name {
	case Duchi:
		return Report{Value: m.duchi(m.ToDomain(x), rng)}
	case Piecewise:
		return Report{Value: m.piecewise(m.ToDomain(x), rng)}
	case Hybrid:
		t := m.ToDomain(x)
		if m.alpha > 0 && rng.Float64() < m.alpha {
			return Report{Value: m.piecewise(t, rng)}
		}
		return Report{Value: m.duchi(t, rng)}
	case GRR:
		l := m.round(x, rng)
		if rng.Float64() < m.p {
			return Report{Code: uint64(l)}
		}
		j := rng.IntN(m.k - 1)
		if j >= l {
			j++
		}
		return Report{Code: uint64(j)}
	case OUE:
		// Every bit is 1 with probability q, from a 32-bit uniform u each
		// (two per draw): (u - q32) >> 63 is 1 exactly when u < q32. Bit l
		// then takes its uniform's top bit instead: probability 1/2.
		l := m.round(x, rng)
		q := uint64(m.q32)
		var code, fair uint64
		for j := 0; j < m.k; j += 2 {
			u := rng.Uint64()
			lo, hi := u&0xffffffff, u>>32
			code |= ((lo-q)>>63)<<j | ((hi-q)>>63)<<(j+1)
			if j == l&^1 {
				fair = (lo >> 31) * uint64(1-l&1)
				fair |= (hi >> 31) * uint64(l&1)
			}
		}
		if m.k < 64 {
			code &= 1<<m.k - 1
		}
		return Report{Code: code&^(1<<l) | fair<<l}
	}
	return Report{}
}

// round maps x to a level by randomized rounding: E[g_l] = clip(x).
func (m *Mechanism) round(x float64, rng *rand.Rand) int {
	pos := m.Clip(x) / m.step
	a := int(pos)
	if a >= m.k-1 {
		a = m.k - 2
	}
	if rng.Float64() < pos-float64(a) {
		a++
	}
	return a
}

// roundProbs returns the two levels x may round to and the probability of
// the upper one.
func (m *Mechanism) roundProbs(x float64) (a int, up float64) {
	pos := m.Clip(x) / m.step
	a = int(pos)
	if a >= m.k-1 {
		a = m.k - 2
	}
	return a, math.Min(math.Max(pos-float64(a), 0), 1)
}

func (m *Mechanism) duchi(t float64, rng *rand.Rand) float64 {
	if rng.Float64() < 0.5+0.5*t*m.slope {
		return m.b
	}
	return -m.b
}

func (m *Mechanism) piecewise(t float64, rng *rand.Rand) float64 {
	l := (m.c+1)/2*t - (m.c-1)/2
	r := l + m.c - 1
	var y float64
	if rng.Float64() < m.pIn {
		y = l + (m.c-1)*rng.Float64()
	} else if u := (m.c + 1) * rng.Float64(); u < l+m.c { // total length outside [l, r]
		y = -m.c + u
	} else {
		y = r + (u - (l + m.c))
	}
	// Snap to the grid C*j/2^32: which floats the sampler can reach depends
	// on l(t), and would otherwise leak t through the low-order bits of y
	// (Mironov, CCS 2012). Each grid point's probability is the integral of
	// the density over its cell, so the e^eps bound carries over.
	return m.c * math.Round(y/m.c*(1<<32)) / (1 << 32)
}

// Decode is the SO's side for one report: an unbiased estimate of the
// clipped reading, kW. It does not check the report; see ValidateReport.
func (m *Mechanism) Decode(r Report) float64 {
	switch m.name {
	case GRR:
		return (m.Level(int(min(r.Code, uint64(m.k-1)))) - m.q*m.sumG) / (m.p - m.q)
	case OUE:
		s := 0.0
		for j := 0; j < m.k; j++ {
			if r.Code>>j&1 == 1 {
				s += m.level(j)
			}
		}
		return (s - m.q*m.sumG) / (m.p - m.q)
	}
	return m.maxKW * (r.Value + 1) / 2
}

// ValueVariance returns the exact variance of the estimate of t in [-1, 1]
// from one report, where t = 2x/MaxKW - 1 (the package documentation gives
// the formulas). For GRR and OUE it includes the rounding to levels. t is
// clamped to [-1, 1].
func (m *Mechanism) ValueVariance(t float64) float64 {
	if !(t > -1) {
		t = -1
	}
	t = math.Min(t, 1)
	switch m.name {
	case Duchi:
		return m.duchiVar(t)
	case Piecewise:
		return m.pmVar(t)
	case Hybrid:
		return m.alpha*m.pmVar(t) + (1-m.alpha)*m.duchiVar(t)
	}
	h := m.maxKW / 2
	return m.ReadingVariance(h*(t+1)) / (h * h)
}

func (m *Mechanism) duchiVar(t float64) float64 { return m.b*m.b - t*t }

func (m *Mechanism) pmVar(t float64) float64 {
	a := math.Expm1(m.eps / 2)
	return t*t/a + (a+4)/(3*a*a)
}

// ReadingVariance returns the exact variance of Decode(Perturb(x)), kW^2.
func (m *Mechanism) ReadingVariance(x float64) float64 {
	if !m.name.Discrete() {
		h := m.maxKW / 2
		return h * h * m.ValueVariance(m.ToDomain(x))
	}
	a, up := m.roundProbs(x)
	x = m.Clip(x)
	// Law of total variance over the level: E[Var(x^|l) + g_l^2] - x^2.
	v := (1-up)*m.levelSecondMoment(a) + up*m.levelSecondMoment(a+1) - x*x
	return math.Max(v, 0)
}

// levelSecondMoment returns E[x^^2 | level j] = Var(x^ | j) + g_j^2.
func (m *Mechanism) levelSecondMoment(j int) float64 {
	g := m.level(j)
	d := m.p - m.q
	var v float64
	if m.name == GRR {
		mean := m.p*g + m.q*(m.sumG-g)
		second := m.p*g*g + m.q*(m.sumG2-g*g)
		v = (second - mean*mean) / (d * d)
	} else {
		v = (g*g*m.p*(1-m.p) + (m.sumG2-g*g)*m.q*(1-m.q)) / (d * d)
	}
	return v + g*g
}

// WorstReadingVariance returns the largest ReadingVariance over all readings
// in [0, MaxKW]: the variance bound the SO can use without knowing any
// reading.
func (m *Mechanism) WorstReadingVariance() float64 { return m.worstVar }

func (m *Mechanism) computeWorstVariance() float64 {
	h := m.maxKW / 2
	switch m.name {
	case Duchi:
		return h * h * m.duchiVar(0)
	case Piecewise:
		return h * h * m.pmVar(1)
	case Hybrid:
		return h * h * math.Max(m.ValueVariance(0), m.ValueVariance(1))
	}
	// Between levels a and a+1 the variance is L(x) - x^2 with L linear:
	// concave, so its maximum is at the vertex or an end of the segment.
	worst := 0.0
	for a := 0; a < m.k-1; a++ {
		lo, hi := m.level(a), m.level(a+1)
		ca, cb := m.levelSecondMoment(a), m.levelSecondMoment(a+1)
		slope := (cb - ca) / (hi - lo)
		x := math.Min(math.Max(slope/2, lo), hi)
		v := ca + slope*(x-lo) - x*x
		worst = math.Max(worst, math.Max(v, math.Max(ca-lo*lo, cb-hi*hi)))
	}
	return worst
}

// FrequencyVariance returns n times the variance of a level's frequency
// estimate from n reports when each reading lands on that level with
// probability f: P(1-P)/(p-q)^2 with P = q + f(p-q), the probability that a
// report counts for the level (reports it, for GRR; sets its bit, for
// OUE). At f = 0 it is (e^eps+k-2)/(e^eps-1)^2 for GRR and 4e^eps/(e^eps-1)^2
// for OUE (Wang et al. 2017's Var*). For a fixed population whose mean
// probability of the level is f it is an upper bound: the exact variance is
// sum_i P_i(1-P_i)/(n(p-q))^2 with P_i = q + f_i(p-q), and P(1-P) is concave.
// f is clamped to [0, 1].
func (m *Mechanism) FrequencyVariance(f float64) (float64, error) {
	if !m.name.Discrete() {
		return 0, fmt.Errorf("%s: %w", m.name, ErrNotHistogram)
	}
	if !(f > 0) {
		f = 0
	}
	f = math.Min(f, 1)
	d := m.p - m.q
	pp := m.q + f*d
	return pp * (1 - pp) / (d * d), nil
}

// AddLevelProbs adds to w[j] the probability that reading x is rounded to
// level j (w needs Levels() entries): summed over a population, the
// expected histogram that the frequency estimates are unbiased for.
func (m *Mechanism) AddLevelProbs(x float64, w []float64) error {
	if !m.name.Discrete() {
		return fmt.Errorf("%s: %w", m.name, ErrNotHistogram)
	}
	if len(w) != m.k {
		return fmt.Errorf("%w: level weights have %d entries; %s has %d levels", ErrInvalidConfig, len(w), m.name, m.k)
	}
	a, up := m.roundProbs(x)
	w[a] += 1 - up
	w[a+1] += up
	return nil
}
