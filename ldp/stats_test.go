package ldp

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// Statistical tests in this package are deterministic (fixed seeds) but
// their tolerances are not magic numbers: each check is a z-test (or KS or
// chi-square test) at a false-alarm probability of familyAlpha divided by
// the number of checks in the test function (Bonferroni), so a correct
// implementation fails a whole test function with probability below
// familyAlpha for a random seed.
const familyAlpha = 1e-3

// zFor returns the two-sided z threshold for one of checks checks.
func zFor(checks int) float64 { return NormalQuantile(1 - familyAlpha/(2*float64(checks))) }

// sampleStats returns the sample mean, the unbiased sample variance, and
// the standard error of that variance from the sample's fourth central
// moment: Var(s^2) = (mu4 - sigma^4 (n-3)/(n-1)) / n.
func sampleStats(x []float64) (mean, variance, seVar float64) {
	n := float64(len(x))
	for _, v := range x {
		mean += v
	}
	mean /= n
	var m2, m4 float64
	for _, v := range x {
		d := (v - mean) * (v - mean)
		m2 += d
		m4 += d * d
	}
	variance = m2 / (n - 1)
	m4 /= n
	s2 := m2 / n
	seVar = math.Sqrt(math.Max(m4-s2*s2*(n-3)/(n-1), 0) / n)
	return mean, variance, seVar
}

// checkMoments asserts that x has mean wantMean and variance wantVar within
// z standard errors (the mean's from wantVar, the variance's from the
// sample's fourth moment).
func checkMoments(t *testing.T, what string, x []float64, wantMean, wantVar, z float64) {
	t.Helper()
	mean, v, se := sampleStats(x)
	n := float64(len(x))
	if d := math.Abs(mean - wantMean); d > z*math.Sqrt(wantVar/n) {
		t.Errorf("%s: mean %.6g, want %.6g (off by %.2f standard errors, tolerance %.2f)", what, mean, wantMean, d/math.Sqrt(wantVar/n), z)
	}
	if d := math.Abs(v - wantVar); d > z*se {
		t.Errorf("%s: variance %.6g, theory %.6g (off by %.2f standard errors of the sample variance, tolerance %.2f)", what, v, wantVar, d/se, z)
	}
}

// ksCritical returns the Kolmogorov-Smirnov threshold for n samples at
// false-alarm probability alpha: P(sqrt(n) D > lambda) <= 2 exp(-2 lambda^2)
// for a continuous CDF, and less for one with jumps.
func ksCritical(n int, alpha float64) float64 {
	return math.Sqrt(math.Log(2/alpha)/2) / math.Sqrt(float64(n))
}

// ksStatistic returns sup |F_n - F| for samples x (sorted in place). F may
// have atoms: at each distinct sample value v, F_n's left limit is compared
// with F's left limit and its value after the run of ties with F(v).
func ksStatistic(x []float64, cdf func(float64) float64) float64 {
	slices.Sort(x)
	n := float64(len(x))
	d := 0.0
	for i := 0; i < len(x); {
		j := i
		for j < len(x) && x[j] == x[i] {
			j++
		}
		v := x[i]
		d = math.Max(d, math.Abs(float64(j)/n-cdf(v)))
		d = math.Max(d, math.Abs(float64(i)/n-cdf(math.Nextafter(v, math.Inf(-1)))))
		i = j
	}
	return d
}

// chiSquareCritical is the Wilson-Hilferty approximation of the upper
// alpha quantile of the chi-square distribution with df degrees of freedom.
func chiSquareCritical(df int, alpha float64) float64 {
	k := float64(df)
	z := NormalQuantile(1 - alpha)
	c := 1 - 2/(9*k) + z*math.Sqrt(2/(9*k))
	return k * c * c * c
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)) }
