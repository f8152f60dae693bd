package charging

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
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
	sweeps := 0  // trials whose answer needs more than one segment
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
		if !tb.fill(yc, yd, c, d, 0, n-1, tb.departLam(yc, yd, math.NaN()), 0, 1e-12) {
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
		// The same tube warm-started from this projection's segments, on a
		// nearby point, must give what a fresh tube gives.
		zc, zd := make([]float64, n), make([]float64, n)
		for s := range zc {
			zc[s], zd[s] = yc[s]+0.01*r.NormFloat64(), yd[s]+0.01*r.NormFloat64()
		}
		wc, wd, fc, fd := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
		tb.project(zc, zd, wc, wd, math.NaN())
		newTube(&ev, dt).project(zc, zd, fc, fd, math.NaN())
		for s := 0; s < n; s++ {
			if math.Abs(wc[s]-fc[s]) > 1e-9 || math.Abs(wd[s]-fd[s]) > 1e-9 {
				t.Fatalf("trial %d slot %d: warm start gives (%v, %v), a fresh tube (%v, %v)", trial, s, wc[s], wd[s], fc[s], fd[s])
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

// v2gProblem is the paper problem with every third vehicle given a
// battery (bidirectional when pdis > 0), its departure need its old
// energy on top of a drawn arrival SOC.
func v2gProblem(pdis float64) *Problem {
	p := ieee13Problem(1, paperFleet, 0.95)
	r := rand.New(rand.NewPCG(15, 3))
	for i := range p.EVs {
		if i%3 != 0 {
			continue
		}
		ev := &p.EVs[i]
		ev.Capacity = 60
		ev.SOCArrive = 10 + 20*r.Float64()
		ev.SOCMin = 10
		ev.SOCDepart = ev.SOCArrive + ev.Energy
		ev.Energy = 0
		ev.PDis, ev.DisEfficiency = pdis, 0.9
	}
	return p
}

// checkBatteries checks every battery vehicle's power and SOC bounds from
// its net schedule alone (charge = max(x, 0), discharge = max(-x, 0), the
// only reading when the relaxation is exact) and that the SOC the solver
// reports is that one.
func checkBatteries(t *testing.T, p *Problem, sol *Solution) {
	t.Helper()
	if sol.Simultaneous > 1e-7 {
		t.Fatalf("a vehicle charges and discharges %g kW in one slot: the relaxation is not exact here", sol.Simultaneous)
	}
	for i, ev := range p.EVs {
		if !ev.Battery() {
			continue
		}
		s := ev.SOCArrive
		for tt, x := range sol.Schedules[i] {
			in := tt >= ev.Arrive && tt < ev.Depart
			if x < -ev.PDis-1e-9 || x > ev.PMax+1e-9 || (!in && x != 0) {
				t.Fatalf("EV %s slot %d: %v kW outside [-%v, %v] or outside its window", ev.ID, tt, x, ev.PDis, ev.PMax)
			}
			s += ev.Efficiency*p.DT*max(x, 0) - p.DT/ev.DisEfficiency*max(-x, 0)
			if s < ev.SOCMin-1e-6 || s > ev.Capacity+1e-6 {
				t.Fatalf("EV %s slot %d: SOC %.6f kWh outside [%v, %v]", ev.ID, tt, s, ev.SOCMin, ev.Capacity)
			}
			if math.Abs(s-sol.SOC[i][tt]) > 1e-6 {
				t.Fatalf("EV %s slot %d: SOC from the schedule %.9f, reported %.9f", ev.ID, tt, s, sol.SOC[i][tt])
			}
		}
		if s < ev.SOCDepart-1e-6 {
			t.Fatalf("EV %s leaves with %.6f kWh, needs %v", ev.ID, s, ev.SOCDepart)
		}
	}
}

func TestSolveV2G(t *testing.T) {
	only, err := Solve(v2gProblem(0), Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := v2gProblem(6.6)
	sol, err := Solve(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Solution{only, sol} {
		if !s.Converged || !(s.Gap <= 1e-9) {
			t.Fatalf("not certified: converged %v after %d iterations, gap %g", s.Converged, s.Iterations, s.Gap)
		}
	}
	checkBatteries(t, p, sol)
	// The independent certificate from the schedules alone.
	agg := p.Baseline()
	discharged := false
	for i := range p.EVs {
		for tt, x := range sol.Schedules[i] {
			agg[tt] += x
			discharged = discharged || x < -1e-3
		}
	}
	if g := Objective(agg) - LowerBound(p, agg, sol.Mu); math.Sqrt(2*max(g, 0)) > 0.05 {
		t.Fatalf("certificate: gap %g kW^2", g)
	}
	if !discharged {
		t.Fatal("no vehicle discharged on the paper's evening peak")
	}
	peak := func(a []float64) float64 {
		m := 0.0
		for _, v := range a {
			m = max(m, v)
		}
		return m
	}
	if !(sol.Objective < only.Objective && peak(sol.Aggregate) < peak(only.Aggregate)) {
		t.Fatalf("discharging bought nothing: objective %v vs %v charging only, peak %v vs %v", sol.Objective, only.Objective, peak(sol.Aggregate), peak(only.Aggregate))
	}
}

// TestRelaxationExact shows when the relaxation holds: with positive
// prices no vehicle charges and discharges at once (TestSolveV2G); on a
// feeder exporting power (a negative baseline) burning energy in the
// charger lowers the objective, and the solver reports it.
func TestRelaxationExact(t *testing.T) {
	p := v2gProblem(6.6)
	for fi := range p.Feeders {
		for b := range p.Feeders[fi].BaseP {
			for tt := range p.Feeders[fi].BaseP[b] {
				p.Feeders[fi].BaseP[b][tt] = -p.Feeders[fi].BaseP[b][tt]
			}
		}
	}
	sol, err := Solve(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sol.Simultaneous < 1e-3 {
		t.Fatalf("with a negative load the optimum should burn energy (simultaneous %g kW)", sol.Simultaneous)
	}
}

func TestValidateBattery(t *testing.T) {
	base := EV{ID: "car7", Bus: 1, PMax: 6, Efficiency: 0.9, Depart: 8, Capacity: 40, SOCArrive: 20, SOCMin: 5, SOCDepart: 30, PDis: 6, DisEfficiency: 0.9}
	for _, c := range []struct {
		name string
		edit func(*EV)
		want string
	}{
		{"floor above capacity", func(e *EV) { e.SOCMin = 50 }, "SOC floor 50.000 kWh is above the battery capacity"},
		{"impossible need", func(e *EV) { e.SOCDepart = 39.9; e.Depart = 2 }, "departure need 39.900 kWh cannot be met"},
		{"negative discharge efficiency", func(e *EV) { e.DisEfficiency = -0.9 }, "discharge efficiency -0.9 must be in (0, 1]"},
		{"negative charge efficiency", func(e *EV) { e.Efficiency = -0.9 }, "efficiency -0.9 must be in (0, 1]"},
		{"arrives below floor", func(e *EV) { e.SOCArrive = 1 }, "below its own floor"},
		{"energy on a battery", func(e *EV) { e.Energy = 3 }, "states its departure need as soc_depart_kwh"},
		{"pdis without battery", func(e *EV) { e.Capacity = 0; e.SOCArrive, e.SOCMin, e.SOCDepart = 0, 0, 0 }, "battery capacity 0 kWh must be positive"},
	} {
		p := ieee13Problem(1, fleet{}, 0.95)
		p.Slots = 48
		ev := base
		c.edit(&ev)
		p.EVs = []EV{ev}
		err := p.Validate()
		if err == nil || !contains(err.Error(), c.want) || !contains(err.Error(), `"car7"`) {
			t.Errorf("%s: got %v, want an error naming car7 with %q", c.name, err, c.want)
		}
	}
}

// BenchmarkBatteryStep replays the broadcasts of the ieee13-v2g-like
// problem (v2gProblem) to convergence and times one vehicle step of a
// battery vehicle (SOC-tube projection) and of a charging-only one (the
// knapsack projection) on the same broadcasts, in one run:
// ns/battery-step, ns/charging-step and their ratio.
func BenchmarkBatteryStep(b *testing.B) {
	p := v2gProblem(6.6)
	s, err := newSolver(p, Options{Workers: 1})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.aggregate(-1, s.op.Sums()); err != nil {
		b.Fatal(err)
	}
	s.op.Start()
	var casts [][]float64
	for !s.op.Done() {
		casts = append(casts, append([]float64(nil), s.op.Aggregate()...))
		if err := s.aggregate(s.op.Iteration(), s.op.Next()); err != nil {
			b.Fatal(err)
		}
		if _, certify := s.op.Update(); certify {
			s.op.Certify(LowerBound(p, s.op.Aggregate(), s.op.Mu()) - s.wear())
		}
	}
	tau, T := s.op.Tau(), p.Slots
	price, scratch := make([]float64, T), make([]float64, T)
	var bat, chg []*EV
	for i := range p.EVs {
		if p.EVs[i].Battery() {
			bat = append(bat, &p.EVs[i])
		} else {
			chg = append(chg, &p.EVs[i])
		}
	}
	var tBat, tChg time.Duration
	var nBat, nChg int
	replay := func(evs []*EV) (time.Duration, int) {
		vs := make([]Vehicle, len(evs))
		for k, ev := range evs {
			vs[k] = NewVehicle(ev, T, p.DT, nil)
		}
		t0 := time.Now()
		for _, a := range casts {
			for k := range vs {
				vs[k].Step(tau, a, price, scratch)
			}
		}
		return time.Since(t0), len(casts) * len(vs)
	}
	for b.Loop() {
		d, n := replay(bat)
		tBat, nBat = tBat+d, nBat+n
		d, n = replay(chg)
		tChg, nChg = tChg+d, nChg+n
	}
	perBat := float64(tBat.Nanoseconds()) / float64(nBat)
	perChg := float64(tChg.Nanoseconds()) / float64(nChg)
	b.ReportMetric(perBat, "ns/battery-step")
	b.ReportMetric(perChg, "ns/charging-step")
	b.ReportMetric(perBat/perChg, "ratio")
	b.ReportMetric(float64(len(casts)), "iterations")
}
