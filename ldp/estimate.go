package ldp

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// ErrInvalidReport is wrapped by every error for a report outside its
// mechanism's output range or a malformed encoded report.
var ErrInvalidReport = errors.New("invalid LDP report")

// Estimate is an unbiased estimate with the variance bound used for its
// confidence interval.
type Estimate struct {
	Value    float64 // the estimate
	Variance float64 // an upper bound on its variance that needs no reading (worst case), or, for histograms, the plug-in variance
	N        int64   // reports it is based on
}

// SD returns the square root of Variance.
func (e Estimate) SD() float64 { return math.Sqrt(e.Variance) }

// Interval returns the two-sided normal-approximation confidence interval
// Value +- z SD at the given confidence level in (0, 1), e.g. 0.95. With
// the worst-case variance it is conservative: its coverage is at least the
// level, up to the normal approximation (which needs tens of reports).
func (e Estimate) Interval(confidence float64) (lo, hi float64, err error) {
	if !(confidence > 0 && confidence < 1) {
		return 0, 0, fmt.Errorf("%w: confidence level %v must be in (0, 1), e.g. 0.95", ErrInvalidConfig, confidence)
	}
	z := NormalQuantile(0.5 + confidence/2)
	return e.Value - z*e.SD(), e.Value + z*e.SD(), nil
}

// NormalQuantile returns the standard normal quantile Phi^-1(p) for p in
// (0, 1) (NaN outside).
func NormalQuantile(p float64) float64 {
	if !(p > 0 && p < 1) {
		return math.NaN()
	}
	return math.Sqrt2 * math.Erfinv(2*p-1)
}

// Aggregator is the SO's side for one group of meters (a bus, in one slot):
// it counts reports and turns them into unbiased sum, mean and histogram
// estimates. Adding is O(1) per report (O(set bits) for OUE) and never
// allocates. The zero value is not usable; get one from
// Mechanism.NewAggregator. An Aggregator is not safe for concurrent use;
// give each goroutine its own and Merge them.
type Aggregator struct {
	m      *Mechanism
	n      int64
	sum    float64 // continuous: sum of reported values
	counts []int64 // discrete: reports per level (GRR) or set bits per level (OUE)
}

// NewAggregator returns an empty aggregator for m's reports.
func (m *Mechanism) NewAggregator() *Aggregator {
	a := &Aggregator{m: m}
	if m.name.Discrete() {
		a.counts = make([]int64, m.k)
	}
	return a
}

// Mechanism returns the mechanism whose reports a counts.
func (a *Aggregator) Mechanism() *Mechanism { return a.m }

// Reset empties the aggregator, keeping its memory.
func (a *Aggregator) Reset() {
	a.n, a.sum = 0, 0
	clear(a.counts)
}

// Count returns the number of reports added.
func (a *Aggregator) Count() int64 { return a.n }

// ValidateReport reports whether r lies in m's output range: GRR levels
// below k, OUE codes with no bit at or above k, Duchi values exactly +-B,
// piecewise and hybrid values finite and within [-C, C] (exactly +-B for a
// hybrid that never uses PM, at epsilon <= EpsilonStar).
func (m *Mechanism) ValidateReport(r Report) error {
	switch m.name {
	case GRR:
		if r.Code >= uint64(m.k) || r.Value != 0 {
			return fmt.Errorf("%w: grr level %d (value %v) is outside 0..%d", ErrInvalidReport, r.Code, r.Value, m.k-1)
		}
	case OUE:
		if (m.k < 64 && r.Code>>m.k != 0) || r.Value != 0 {
			return fmt.Errorf("%w: oue code %#x (value %v) sets bits beyond its %d levels", ErrInvalidReport, r.Code, r.Value, m.k)
		}
	default:
		lo, hi := m.OutputRange()
		ok := r.Code == 0 && r.Value >= lo && r.Value <= hi
		if m.atoms {
			ok = r.Code == 0 && (r.Value == lo || r.Value == hi)
		}
		if !ok {
			return fmt.Errorf("%w: %s value %v (code %d) is outside its output range [%g, %g]", ErrInvalidReport, m.name, r.Value, r.Code, lo, hi)
		}
	}
	return nil
}

// Add validates r (see Mechanism.ValidateReport) and counts it. An invalid
// report is rejected and leaves the aggregator unchanged.
func (a *Aggregator) Add(r Report) error {
	m := a.m
	switch m.name {
	case GRR:
		if r.Code >= uint64(len(a.counts)) || r.Value != 0 {
			return m.ValidateReport(r)
		}
		a.counts[r.Code]++
	case OUE:
		if (m.k < 64 && r.Code>>m.k != 0) || r.Value != 0 {
			return m.ValidateReport(r)
		}
		for c := r.Code; c != 0; c &= c - 1 {
			a.counts[bits.TrailingZeros64(c)]++
		}
	default:
		if r.Code != 0 || !(r.Value >= -m.c && r.Value <= m.c) || (m.atoms && r.Value != m.b && r.Value != -m.b) {
			return m.ValidateReport(r)
		}
		a.sum += r.Value
	}
	a.n++
	return nil
}

// AddAll adds every report of rs, or, if one is invalid, none of them and
// returns an error naming its index. It checks and counts in one pass and
// undoes the counts of the valid prefix on an error.
func (a *Aggregator) AddAll(rs []Report) error {
	m := a.m
	switch m.name {
	case GRR:
		k := uint64(len(a.counts))
		for i, r := range rs {
			if r.Code >= k || r.Value != 0 {
				for _, u := range rs[:i] {
					a.counts[u.Code]--
				}
				return fmt.Errorf("report %d: %w", i, m.ValidateReport(r))
			}
			a.counts[r.Code]++
		}
	case OUE:
		for i, r := range rs {
			if (m.k < 64 && r.Code>>m.k != 0) || r.Value != 0 {
				for _, u := range rs[:i] {
					for c := u.Code; c != 0; c &= c - 1 {
						a.counts[bits.TrailingZeros64(c)]--
					}
				}
				return fmt.Errorf("report %d: %w", i, m.ValidateReport(r))
			}
			for c := r.Code; c != 0; c &= c - 1 {
				a.counts[bits.TrailingZeros64(c)]++
			}
		}
	default:
		s := 0.0
		for i, r := range rs {
			if r.Code != 0 || !(r.Value >= -m.c && r.Value <= m.c) || (m.atoms && r.Value != m.b && r.Value != -m.b) {
				return fmt.Errorf("report %d: %w", i, m.ValidateReport(r))
			}
			s += r.Value
		}
		a.sum += s
	}
	a.n += int64(len(rs))
	return nil
}

// Merge adds b's counts to a. Both must count reports of equal mechanisms.
func (a *Aggregator) Merge(b *Aggregator) error {
	if a.m.name != b.m.name || a.m.eps != b.m.eps || a.m.maxKW != b.m.maxKW || a.m.k != b.m.k {
		return fmt.Errorf("%w: cannot merge %s (eps %g, max %g kW, %d levels) into %s (eps %g, max %g kW, %d levels); aggregate each configuration separately",
			ErrInvalidConfig, b.m.name, b.m.eps, b.m.maxKW, b.m.k, a.m.name, a.m.eps, a.m.maxKW, a.m.k)
	}
	a.n += b.n
	a.sum += b.sum
	for j, c := range b.counts {
		a.counts[j] += c
	}
	return nil
}

// Sum returns the unbiased estimate of the sum of the clipped readings
// behind the reports, kW, with variance bound n * WorstReadingVariance. Its
// variance given the readings is the sum of their ReadingVariance.
func (a *Aggregator) Sum() Estimate {
	m := a.m
	n := float64(a.n)
	var s float64
	if m.name.Discrete() {
		// sum_j g_j (C_j - n q) / (p - q)
		var gc float64
		for j, c := range a.counts {
			if c != 0 {
				gc += m.level(j) * float64(c)
			}
		}
		s = (gc - n*m.q*m.sumG) / (m.p - m.q)
	} else {
		s = m.maxKW / 2 * (a.sum + n)
	}
	return Estimate{Value: s, Variance: n * m.worstVar, N: a.n}
}

// Mean returns the unbiased estimate of the mean clipped reading, kW (NaN
// with no reports).
func (a *Aggregator) Mean() Estimate {
	s := a.Sum()
	if a.n == 0 {
		return Estimate{Value: math.NaN(), Variance: math.NaN()}
	}
	n := float64(a.n)
	return Estimate{Value: s.Value / n, Variance: s.Variance / (n * n), N: a.n}
}

// Histogram returns, for each level j, the unbiased estimate of the
// fraction of readings rounded to level j, (C_j/n - q)/(p - q), with the
// plug-in variance FrequencyVariance(f^_j)/n. The estimates sum to 1 for
// GRR; they can be negative. It allocates the result.
func (a *Aggregator) Histogram() ([]Estimate, error) {
	m := a.m
	if !m.name.Discrete() {
		return nil, fmt.Errorf("%s: %w", m.name, ErrNotHistogram)
	}
	if a.n == 0 {
		return nil, fmt.Errorf("%w: no reports to build a histogram from", ErrInvalidReport)
	}
	n := float64(a.n)
	out := make([]Estimate, m.k)
	for j, c := range a.counts {
		f := (float64(c)/n - m.q) / (m.p - m.q)
		v, _ := m.FrequencyVariance(f)
		out[j] = Estimate{Value: f, Variance: v / n, N: a.n}
	}
	return out, nil
}
