package home

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestR2(t *testing.T) {
	load := []float64{1, 3, 2, 5, 4, 0.5, 2.5, 3}
	shift := make([]float64, len(load))
	copy(shift[1:], load[:len(load)-1])
	shift[0] = 2
	cases := []struct {
		name  string
		meter []float64
		r2    float64 // -1: only check range
		lagR2 float64
		lag   int
	}{
		{"identical", load, 1, 1, 0},
		{"affine", affine(load, -2, 7), 1, 1, 0},
		{"constant", constant(len(load), 4.2), 0, 0, 0},
		{"delayed one slot", shift, -1, 1, 1},
	}
	for _, c := range cases {
		r2 := R2(c.meter, load)
		if c.r2 >= 0 && math.Abs(r2-c.r2) > 1e-12 {
			t.Errorf("%s: R2 %v, want %v", c.name, r2, c.r2)
		}
		if r2 < 0 || r2 > 1 {
			t.Errorf("%s: R2 %v outside [0, 1]", c.name, r2)
		}
		lr, lag := LaggedR2(c.meter, load, MaxLag)
		if math.Abs(lr-c.lagR2) > 1e-12 || lag != c.lag {
			t.Errorf("%s: lagged R2 %v at lag %d, want %v at %d", c.name, lr, lag, c.lagR2, c.lag)
		}
		if lr < r2-1e-15 {
			t.Errorf("%s: lagged R2 %v below R2 %v", c.name, lr, r2)
		}
	}
}

func affine(x []float64, a, b float64) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = a*v + b
	}
	return out
}

func constant(n int, v float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// TestMutualInformation: zero for a constant meter and, up to the
// estimator's bias, for independent series; about log2(B) for a meter that
// determines the load's bin.
func TestMutualInformation(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := 1000
	x, y := make([]float64, n), make([]float64, n)
	for i := range x {
		x[i], y[i] = rng.Float64(), rng.Float64()
	}
	B := math.Round(math.Cbrt(float64(n)))
	cases := []struct {
		name   string
		m, l   []float64
		lo, hi float64
	}{
		{"constant", constant(n, 3), y, 0, 0},
		{"independent", x, y, 0, 0.05},
		{"identical", y, y, math.Log2(B) - 0.1, math.Log2(B) + 0.01},
		{"monotone", affine(y, 3, 1), y, math.Log2(B) - 0.1, math.Log2(B) + 0.01},
	}
	for _, c := range cases {
		if mi := MutualInformation(c.m, c.l); mi < c.lo || mi > c.hi {
			t.Errorf("%s: MI %v bits, want [%v, %v]", c.name, mi, c.lo, c.hi)
		}
	}
}

func BenchmarkMetrics(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	m, l := make([]float64, 96), make([]float64, 96)
	for i := range m {
		m[i], l[i] = rng.Float64(), rng.Float64()
	}
	for b.Loop() {
		R2(m, l)
		LaggedR2(m, l, MaxLag)
		MutualInformation(m, l)
	}
}
