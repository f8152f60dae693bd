package charging

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestProjectIsProjection checks Project against the two properties that
// define a Euclidean projection onto a convex set, with no reference to how
// it is computed: the result is in the set, and y - x makes an obtuse angle
// with every direction into the set (the variational inequality), tested at
// vertices and random points of the set.
func TestProjectIsProjection(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 2000; trial++ {
		n := 1 + rng.IntN(96)
		u := 0.5 + rng.Float64()*10
		e := rng.Float64() * float64(n) * u
		if trial%50 == 0 {
			e = float64(n) * u // full
		}
		if trial%50 == 1 {
			e = 0
		}
		y := make([]float64, n)
		for i := range y {
			y[i] = rng.NormFloat64() * 20
			if trial%7 == 0 {
				y[i] = math.Round(y[i]) // ties among breakpoints
			}
		}
		x := make([]float64, n)
		hint := math.NaN()
		if trial%3 == 0 {
			hint = rng.NormFloat64() * 30
		}
		Project(y, u, e, hint, x)
		sum := 0.0
		for i, v := range x {
			if v < 0 || v > u {
				t.Fatalf("trial %d: x[%d] = %v outside [0, %v]", trial, i, v, u)
			}
			sum += v
		}
		if math.Abs(sum-e) > 1e-9*(1+e) {
			t.Fatalf("trial %d: sum %v, want %v", trial, sum, e)
		}
		for k := 0; k < 20; k++ {
			z := randomPoint(rng, n, u, e)
			dot := 0.0
			for i := range z {
				dot += (y[i] - x[i]) * (z[i] - x[i])
			}
			if dot > 1e-7*(1+math.Abs(e))*u {
				t.Fatalf("trial %d: <y-x, z-x> = %v > 0: x is not the projection", trial, dot)
			}
		}
	}
}

// randomPoint returns a random point of {0 <= z <= u, sum z = e}.
func randomPoint(rng *rand.Rand, n int, u, e float64) []float64 {
	z := make([]float64, n)
	left := e
	for _, i := range rng.Perm(n) {
		take := math.Min(left, u)
		if rng.IntN(3) > 0 {
			take *= rng.Float64()
		}
		z[i] = take
		left -= take
	}
	// Spread what is left over the coordinates with room.
	for i := 0; left > 1e-12 && i < n; i++ {
		add := math.Min(u-z[i], left)
		z[i] += add
		left -= add
	}
	return z
}

func TestProjectMatchesSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 500; trial++ {
		n := 1 + rng.IntN(50)
		u := 1 + rng.Float64()*5
		e := rng.Float64() * float64(n) * u
		y := make([]float64, n)
		for i := range y {
			y[i] = rng.NormFloat64() * 10
		}
		x := make([]float64, n)
		Project(y, u, e, math.NaN(), x)
		nu := projectSort(y, u, e)
		for i := range y {
			want := math.Min(math.Max(y[i]-nu, 0), u)
			if math.Abs(x[i]-want) > 1e-9 {
				t.Fatalf("trial %d: x[%d] = %v, breakpoint method gives %v", trial, i, x[i], want)
			}
		}
	}
}

func BenchmarkProject96(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	y := make([]float64, 96)
	for i := range y {
		y[i] = rng.NormFloat64() * 10
	}
	x := make([]float64, 96)
	nu := Project(y, 6.6, 200, math.NaN(), x)
	b.Run("warm", func(b *testing.B) {
		for b.Loop() {
			Project(y, 6.6, 200, nu, x)
		}
	})
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			Project(y, 6.6, 200, math.NaN(), x)
		}
	})
	b.Run("sort", func(b *testing.B) {
		for b.Loop() {
			projectSort(y, 6.6, 200)
		}
	})
}
