package charging

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gridveil/gridveil/grid"
)

// TestStepProjectIsProject: the fused step-and-projection of Vehicle.Step
// gives bit for bit what forming y = x - tau (agg + price) and calling
// Project does, shift and schedule, for warm starts that are exact, close,
// far off or outside the range of y, and for inputs with ties (rounded
// values) where Project's Newton iteration takes its odd paths.
func TestStepProjectIsProject(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for trial := 0; trial < 20000; trial++ {
		n := 1 + rng.IntN(96)
		u := 0.5 + rng.Float64()*10
		e := (0.001 + 0.998*rng.Float64()) * float64(n) * u
		x, agg, price := make([]float64, n), make([]float64, n), make([]float64, n)
		for i := range x {
			x[i] = rng.Float64() * u
			agg[i] = 1000 + rng.NormFloat64()*200
			price[i] = math.Max(0, rng.NormFloat64()*5)
		}
		tau := 1e-3 + rng.Float64()*0.05
		ties := trial%5 == 0
		if ties {
			// Everything on a grid of 1/8: y lands exactly on another
			// slot's breakpoints and on the hint, where d == u and d == 0
			// decide which piece a slot is on.
			u = float64(1 + rng.IntN(4))
			tau = 1.0 / 64
			for i := range x {
				x[i] = float64(rng.IntN(5)) / 4 * u
				agg[i] = float64(8 * rng.IntN(40))
				price[i] = float64(8 * rng.IntN(3))
			}
			e = math.Round(e*8) / 8
			if e <= 0 || e >= float64(n)*u {
				continue
			}
		}
		y := make([]float64, n)
		for i := range y {
			y[i] = x[i] - tau*(agg[i]+price[i])
		}
		want := make([]float64, n)
		exactNu := Project(y, u, e, math.NaN(), want)
		var hint float64
		switch trial % 4 {
		case 0:
			hint = exactNu // exact warm start
		case 1:
			hint = exactNu + rng.NormFloat64()*0.1
		case 2:
			hint = exactNu + rng.NormFloat64()*100 // usually outside (min y - u, max y)
		default:
			hint = rng.NormFloat64()
		}
		if ties && trial%3 == 0 {
			hint = y[rng.IntN(n)] - u*float64(rng.IntN(2)) // on a breakpoint
		}
		wantNu := Project(y, u, e, hint, want)
		got, scratch := append([]float64(nil), x...), make([]float64, n)
		gotNu := stepProject(got, agg, price, tau, u, e, hint, scratch)
		if math.Float64bits(gotNu) != math.Float64bits(wantNu) {
			t.Fatalf("trial %d: shift %v, Project %v", trial, gotNu, wantNu)
		}
		for i := range got {
			if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
				t.Fatalf("trial %d slot %d: %v, Project %v", trial, i, got[i], want[i])
			}
		}
	}
}

// TestMulRRowsIsMulR: the operator's product with R over rows of slots
// equals grid.Feeder.MulR slot by slot, bit for bit, on the IEEE 13-bus
// feeder and on random radial feeders.
func TestMulRRowsIsMulR(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	ieee, _ := grid.IEEE13()
	for trial := 0; trial < 200; trial++ {
		f := ieee
		if trial > 0 {
			nb := 2 + rng.IntN(40)
			f = grid.Feeder{Name: "random", V0: 1, SBase: 1000, Buses: make([]grid.Bus, nb)}
			f.Buses[0].Parent = -1
			for i := 1; i < nb; i++ {
				f.Buses[i].Parent = rng.IntN(i)
				f.Buses[i].R = rng.Float64() * 0.01
			}
		}
		nb, T := len(f.Buses), 1+rng.IntN(96)
		rows := make([]float64, nb*T)
		for i := range rows {
			rows[i] = rng.NormFloat64() * 100
		}
		in := append([]float64(nil), rows...)
		mulRRows(&f, rows, T)
		w, out := make([]float64, nb), make([]float64, nb)
		for s := 0; s < T; s++ {
			for b := range w {
				w[b] = in[b*T+s]
			}
			f.MulR(w, out)
			for b := range out {
				if math.Float64bits(rows[b*T+s]) != math.Float64bits(out[b]) {
					t.Fatalf("trial %d bus %d slot %d: %v, MulR %v", trial, b, s, rows[b*T+s], out[b])
				}
			}
		}
	}
}
