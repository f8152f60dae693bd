package charging

import (
	"math"
	"math/rand/v2"
	"testing"
)

// randomBattery draws a battery vehicle with a non-empty set on a window
// of n slots, its SOC tube often binding.
func randomBattery(r *rand.Rand, n int, dt float64) EV {
	ev := EV{ID: "b", PMax: 1 + 6*r.Float64(), Efficiency: 0.8 + 0.2*r.Float64(), Arrive: 0, Depart: n,
		Capacity: 5 + 20*r.Float64(), PDis: 6 * r.Float64(), DisEfficiency: 0.8 + 0.2*r.Float64()}
	if r.IntN(4) == 0 {
		ev.PDis = 0
	}
	ev.SOCMin = ev.Capacity * 0.4 * r.Float64()
	ev.SOCArrive = ev.SOCMin + (ev.Capacity-ev.SOCMin)*r.Float64()
	reach := math.Min(ev.Capacity, ev.SOCArrive+ev.PMax*ev.Efficiency*dt*float64(n))
	ev.SOCDepart = reach * r.Float64()
	if r.IntN(3) == 0 {
		ev.Degradation = r.Float64()
	}
	return ev
}

// checkTube reports the largest violation of the vehicle's constraints by
// (c, d), from its fields and not from the tube.
func checkTube(ev *EV, dt float64, c, d []float64) float64 {
	worst := 0.0
	s := ev.SOCArrive
	for k := range c {
		worst = max(worst, -c[k], c[k]-ev.PMax, -d[k], d[k]-ev.PDis)
		s += ev.Efficiency*dt*c[k] - dt/ev.DisEfficiency*d[k]
		worst = max(worst, ev.SOCMin-s, s-ev.Capacity)
	}
	return max(worst, ev.SOCDepart-s)
}

// dykstra projects (yc, yd) onto the vehicle's set by Dykstra's
// alternating projections onto the box and each cumulative half-space: a
// method that knows nothing of multipliers or segments.
func dykstra(ev *EV, dt float64, yc, yd []float64, cycles int) (c, d []float64) {
	n := len(yc)
	a, b := ev.Efficiency*dt, dt/ev.DisEfficiency
	z := append(append([]float64(nil), yc...), yd...)
	type half struct {
		w   []float64
		rhs float64 // <w, z> <= rhs
	}
	var hs []half
	for k := 0; k < n; k++ {
		w := make([]float64, 2*n)
		for s := 0; s <= k; s++ {
			w[s], w[n+s] = a, -b
		}
		neg := make([]float64, 2*n)
		for i := range w {
			neg[i] = -w[i]
		}
		lo := ev.SOCMin - ev.SOCArrive
		if k == n-1 {
			lo = math.Max(ev.SOCMin, ev.SOCDepart) - ev.SOCArrive
		}
		hs = append(hs, half{w, ev.Capacity - ev.SOCArrive}, half{neg, -lo})
	}
	incr := make([][]float64, len(hs)+1)
	for i := range incr {
		incr[i] = make([]float64, 2*n)
	}
	prev := make([]float64, 2*n)
	for it := 0; it < cycles; it++ {
		// the box
		copy(prev, z)
		for i := range z {
			v := z[i] + incr[0][i]
			u := ev.PMax
			if i >= n {
				u = ev.PDis
			}
			z[i] = math.Min(math.Max(v, 0), u)
			incr[0][i] = v - z[i]
		}
		for h := range hs {
			w := hs[h].w
			dot, ww := 0.0, 0.0
			for i := range z {
				z[i] += incr[h+1][i]
				dot += w[i] * z[i]
				ww += w[i] * w[i]
			}
			old := append([]float64(nil), z...)
			if dot > hs[h].rhs {
				for i := range z {
					z[i] -= (dot - hs[h].rhs) / ww * w[i]
				}
			}
			for i := range z {
				incr[h+1][i] = old[i] - z[i]
			}
		}
	}
	return z[:n], z[n:]
}

func TestProjectTube(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 1))
	const dt = 1 // hour slots: a few slots fill or empty the battery
	sweeps := 0 // trials whose answer needs more than one segment
	for trial := 0; trial < 300; trial++ {
		n := 1 + r.IntN(7)
		ev := randomBattery(r, n, dt)
		tb := newTube(&ev, dt)
		yc, yd := make([]float64, n), make([]float64, n)
		for k := range yc {
			// alternating pulls to charge and to discharge run into the
			// capacity and the floor in the middle of the window
			sgn := float64(1 - 2*(k/2%2))
			yc[k] = sgn*8*r.Float64() + 2*r.Float64() - 1
			yd[k] = -sgn*8*r.Float64() + 2*r.Float64() - 1
		}
		c, d := make([]float64, n), make([]float64, n)
		if !tb.fill(yc, yd, c, d, 0, n-1, tb.departLam(yc, yd), 0, 1e-12) {
			sweeps++
		}
		hint := math.NaN()
		if trial%2 == 1 {
			hint = 3*r.Float64() - 1.5 // a wrong warm start must not matter
		}
		tb.project(yc, yd, c, d, hint)
		if v := checkTube(&ev, dt, c, d); v > 1e-9 {
			t.Fatalf("trial %d: projection violates the set by %g (ev %+v)", trial, v, ev)
		}
		// Variational inequality: <y - z, w - z> <= 0 for every w of the
		// set; w from projections of other points, checked feasible.
		for k := 0; k < 20; k++ {
			wc, wd, zc, zd := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
			for s := range zc {
				zc[s], zd[s] = 20*r.Float64()-10, 20*r.Float64()-10
			}
			tb.project(zc, zd, wc, wd, math.NaN())
			if checkTube(&ev, dt, wc, wd) > 1e-9 {
				t.Fatalf("trial %d: a projected point is infeasible", trial)
			}
			vi := 0.0
			for s := 0; s < n; s++ {
				vi += (yc[s]-c[s])*(wc[s]-c[s]) + (yd[s]-d[s])*(wd[s]-d[s])
			}
			if vi > 1e-8 {
				t.Fatalf("trial %d: variational inequality fails: <y-z, w-z> = %g > 0 (ev %+v, y %v %v, z %v %v)", trial, vi, ev, yc, yd, c, d)
			}
		}
		if trial < 60 {
			dc, dd := dykstra(&ev, dt, yc, yd, 20000)
			for s := 0; s < n; s++ {
				if math.Abs(dc[s]-c[s]) > 1e-5 || math.Abs(dd[s]-d[s]) > 1e-5 {
					t.Fatalf("trial %d slot %d: projection (%.9f, %.9f) but Dykstra (%.9f, %.9f); ev %+v y %v %v", trial, s, c[s], d[s], dc[s], dd[s], ev, yc, yd)
				}
			}
		}
	}
	t.Logf("sweeps %d", sweeps)
	if sweeps < 50 {
		t.Fatalf("only %d of 300 trials needed the taut-string sweep; the test does not exercise it", sweeps)
	}
}

// TestBatteryBound checks the dynamic programme against the linear
// value of the projection of a point far along -g, which lies on the
// LP's optimal face: two methods that share no code.
func TestBatteryBound(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 2))
	const dt = 0.25
	for trial := 0; trial < 300; trial++ {
		n := 1 + r.IntN(8)
		ev := randomBattery(r, n, dt)
		g := make([]float64, n)
		for k := range g {
			g[k] = 4*r.Float64() - 1
		}
		q, ok := batteryBound(&ev, dt, g)
		if !ok {
			t.Fatalf("trial %d: bound says the set is empty (ev %+v)", trial, ev)
		}
		tb := newTube(&ev, dt)
		const far = 1e6
		yc, yd := make([]float64, n), make([]float64, n)
		for k := range g {
			yc[k] = -far * (g[k] + ev.Degradation)
			yd[k] = -far * (ev.Degradation - g[k])
		}
		c, d := make([]float64, n), make([]float64, n)
		tb.project(yc, yd, c, d, math.NaN())
		lp := 0.0
		for k := range g {
			lp += g[k]*(c[k]-d[k]) + ev.Degradation*(c[k]+d[k])
		}
		if math.Abs(lp-q) > 1e-6*(1+math.Abs(q)) {
			t.Fatalf("trial %d: bound %.9f but the far projection's cost is %.9f (ev %+v, g %v)", trial, q, lp, ev, g)
		}
	}
}

// A battery vehicle that may not discharge and whose bounds never bind is
// a charging-only vehicle storing at least its need: its bound term is the
// fractional knapsack's.
func TestBatteryBoundChargingOnly(t *testing.T) {
	const dt = 0.25
	g := []float64{3, 1, 2, 5, 0.5, 4}
	old := EV{ID: "c", PMax: 6, Energy: 7, Efficiency: 0.9, Depart: len(g)}
	bat := EV{ID: "b", PMax: 6, Efficiency: 0.9, Depart: len(g), Capacity: 100, SOCArrive: 10, SOCDepart: 17, DisEfficiency: 1}
	idx := make([]int, len(g))
	zero := make([]float64, len(g))
	vo := NewVehicle(&old, len(g), dt, nil)
	vb := NewVehicle(&bat, len(g), dt, nil)
	a, b := vo.Bound(g, zero, idx), vb.Bound(g, zero, idx)
	if math.Abs(a-b) > 1e-12*math.Abs(a) {
		t.Fatalf("charging-only bound %.15g, battery bound %.15g", a, b)
	}
}
