package home

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// smallProblem is a random instance with T slots for exhaustive checks.
func smallProblem(rng *rand.Rand, T int, trip, export bool) *Problem {
	p := &Problem{
		DT:    0.25,
		Load:  make([]float64, T),
		Price: make([]float64, T),
		Battery: Battery{
			CapacityKWh: 10, SOCMin: 0.2, SOCMax: 0.9,
			ChargeMaxKW: 3 + 6*rng.Float64(), DischargeMaxKW: 2 + 6*rng.Float64(),
			EtaCharge: 0.9 + 0.1*rng.Float64(), EtaDischarge: 0.85 + 0.15*rng.Float64(),
			SelfDischargePerHr: 0.01 * rng.Float64(),
		},
		SOC0:        0.3 + 0.4*rng.Float64(),
		Alpha:       0.05 + 0.9*rng.Float64(),
		Beta:        rng.Float64(),
		AllowExport: export,
	}
	p.SOCEnd = p.SOC0 - 0.05
	for t := range T {
		p.Load[t] = 3 * rng.Float64() * rng.Float64()
		p.Price[t] = 0.1 + 0.3*rng.Float64()
	}
	if trip {
		dep := 1 + rng.IntN(T-2)
		p.Trip = &Trip{Depart: dep, Return: dep + 1 + rng.IntN(T-dep-1), DistanceKM: 5 + 10*rng.Float64(), KMPerKWh: 6, ReserveKWh: 0.5}
		p.SOCEnd = p.SOC0 - 0.2
	}
	return p
}

// bruteForce enumerates every path of grid levels (boundaries 1..T, with
// the trip's interior and return fixed by the grid's round-down rule) and
// returns the least objective, with code that shares nothing with the
// dynamic programme: the meter and every constraint are recomputed from
// the battery equation here.
func bruteForce(p *Problem, K int) (best float64, ok bool) {
	T := len(p.Load)
	b := p.Battery
	h := (b.SOCMax - b.SOCMin) / float64(K-1)
	rho := math.Pow(1-b.SelfDischargePerHr, p.DT)
	lvl := func(k int) float64 { return b.SOCMin + float64(k)*h }
	home := func(t int) bool { return p.Trip == nil || t < p.Trip.Depart || t >= p.Trip.Return }
	meter := make([]float64, T)
	best = math.Inf(1)
	var rec func(t int, soc float64)
	rec = func(t int, soc float64) {
		if t == T {
			if soc < p.SOCEnd-1e-9 {
				return
			}
			var v float64
			for i := range T {
				v += p.Alpha * p.Price[i] * meter[i] * p.DT
				if i > 0 {
					v += (1 - p.Alpha) * p.Beta * (meter[i] - meter[i-1]) * (meter[i] - meter[i-1])
				}
			}
			best, ok = math.Min(best, v), true
			return
		}
		if !home(t) {
			// Drive the trip slot by slot with the battery equation (the
			// energy spread evenly), landing on the grid level at or below
			// the SOC reached on return.
			tr := p.Trip
			if soc*b.CapacityKWh < tr.DistanceKM/tr.KMPerKWh+tr.ReserveKWh-1e-9 {
				return
			}
			n := tr.Return - tr.Depart
			exact := soc
			for range n {
				exact = exact*rho - tr.DistanceKM/tr.KMPerKWh/float64(n)/b.CapacityKWh
			}
			k := int(math.Floor((exact-b.SOCMin)/h + 1e-9))
			if k < 0 {
				return
			}
			for i := tr.Depart; i < tr.Return; i++ {
				meter[i] = p.Load[i]
			}
			rec(tr.Return, lvl(k))
			return
		}
		for k := range K {
			y := lvl(k)
			d := y - soc*rho
			var ch, dis float64
			if d >= 0 {
				ch = d * b.CapacityKWh / (b.EtaCharge * p.DT)
			} else {
				dis = -d * b.EtaDischarge * b.CapacityKWh / p.DT
			}
			if ch > b.ChargeMaxKW*(1+1e-9) || dis > b.DischargeMaxKW*(1+1e-9) {
				continue
			}
			meter[t] = p.Load[t] + ch - dis
			if !p.AllowExport && meter[t] < -1e-9 {
				continue
			}
			rec(t+1, y)
		}
	}
	rec(0, p.SOC0)
	return best, ok
}

// naiveDP is a forward dynamic programme over (previous state, state)
// that enumerates every next level instead of using line envelopes, and
// drives a trip slot by slot with the documented battery recursion
// SOC(t+1) = SOC(t)(1 - delta) - P_drive dt / E_bat (the trip energy spread
// evenly over the away slots), landing on the highest grid level at or
// below the SOC it reaches on return. It checks the envelope code and the
// trip's return rule on instances too large to enumerate, and shares no
// code with the dynamic programme. ok is false when no grid schedule
// exists.
func naiveDP(p *Problem, K int) (best float64, ok bool) {
	T := len(p.Load)
	b := p.Battery
	h := (b.SOCMax - b.SOCMin) / float64(K-1)
	rho := math.Pow(1-b.SelfDischargePerHr, p.DT)
	w := (1 - p.Alpha) * p.Beta
	inf := math.Inf(1)
	lvl := func(k int) float64 { return b.SOCMin + float64(k)*h }
	home := func(t int) bool { return p.Trip == nil || t < p.Trip.Depart || t >= p.Trip.Return }
	// A state at boundary t is (prev, cur): prev = 0 when slot t-1 was away
	// or t = 0 (the meter of slot t-1 does not depend on the battery),
	// k+1 when slot t-1 was at home and started at level k, K+1 when it
	// started at SOC0; cur = the level at boundary t, or inside a trip the
	// level the EV left at. Each state keeps its cost so far, its SOC and
	// the meter of slot t-1.
	type state struct{ cost, soc, meter float64 }
	n := (K + 2) * K
	cur, next := make([]state, n), make([]state, n)
	for i := range cur {
		cur[i].cost = inf
	}
	cur[0] = state{cost: 0, soc: p.SOC0, meter: math.NaN()}
	relax := func(i int, s state) {
		if s.cost < next[i].cost {
			next[i] = s
		}
	}
	for t := range T {
		for i := range next {
			next[i].cost = inf
		}
		for i, s := range cur {
			if s.cost == inf {
				continue
			}
			c0 := i % K
			step := func(m float64) float64 {
				v := s.cost + p.Alpha*p.Price[t]*m*p.DT
				if !math.IsNaN(s.meter) {
					v += w * (m - s.meter) * (m - s.meter)
				}
				return v
			}
			if !home(t) {
				tr := p.Trip
				if t == tr.Depart && s.soc*b.CapacityKWh < tr.DistanceKM/tr.KMPerKWh+tr.ReserveKWh-1e-9 {
					continue
				}
				m := p.Load[t]
				y := s.soc*rho - tr.DistanceKM/tr.KMPerKWh/float64(tr.Return-tr.Depart)/b.CapacityKWh
				if t+1 < tr.Return {
					relax(c0, state{step(m), y, m})
					continue
				}
				k := int(math.Floor((y-b.SOCMin)/h + 1e-9))
				if k >= 0 {
					relax(k, state{step(m), lvl(k), m})
				}
				continue
			}
			prev := c0 + 1
			if t == 0 {
				prev = K + 1
			}
			for k := range K {
				d := lvl(k) - s.soc*rho
				var u float64
				if d >= 0 {
					if u = d * b.CapacityKWh / (b.EtaCharge * p.DT); u > b.ChargeMaxKW*(1+1e-9) {
						continue
					}
				} else if u = d * b.EtaDischarge * b.CapacityKWh / p.DT; -u > b.DischargeMaxKW*(1+1e-9) {
					continue
				}
				m := p.Load[t] + u
				if !p.AllowExport && m < -1e-9 {
					continue
				}
				relax(prev*K+k, state{step(m), lvl(k), m})
			}
		}
		cur, next = next, cur
	}
	best = inf
	for _, s := range cur {
		if s.cost < inf && s.soc >= p.SOCEnd-1e-9 {
			best, ok = math.Min(best, s.cost), true
		}
	}
	return best, ok
}

// nearGridTrip gives p a trip whose per-slot recursion, started from a
// grid level the schedule can depart at, ends a small fraction of a step
// above a grid level: the case where debiting the trip in one step after n
// slots of self-discharge (rho^n x - E) instead of the recursion
// (rho^n x - E sum_{k<n} rho^k / n) lands one level too low. Uniform random
// trips almost never fall there. The self-discharge is raised so that the
// two rules differ by a visible amount on small grids. With top, the
// departure level is the grid's top, and the reserve forces it (the
// departure SOC must exceed the level below), so that the optimum cannot
// avoid the case by departing at another level; that needs a day long
// enough to charge up first.
func nearGridTrip(rng *rand.Rand, p *Problem, K int, top bool) {
	b := &p.Battery
	T := len(p.Load)
	b.SelfDischargePerHr = 0.01 + 0.03*rng.Float64()
	h := (b.SOCMax - b.SOCMin) / float64(K-1)
	rho := math.Pow(1-b.SelfDischargePerHr, p.DT)
	dep := 1 + rng.IntN(T-2)
	if top {
		dep = T/4 + rng.IntN(T/2) // time to charge to the top at the slowest charger
	}
	ret := dep + 1 + rng.IntN(T-dep-1)
	ret = max(ret, min(T, dep+3)) // several away slots: the two rules differ more
	n := ret - dep
	// Depart from the level nearest SOC0 or one above (or the top), return
	// one or more levels below what self-discharge alone leaves (so the trip
	// draws energy), a fraction of the two rules' difference above that
	// level.
	a := min(K-1, int(math.Round((p.SOC0-b.SOCMin)/h))+rng.IntN(2))
	if top {
		a = K - 1
	}
	x := b.SOCMin + float64(a)*h
	g := 0.0
	for k := range n {
		g += math.Pow(rho, float64(k))
	}
	shrink := math.Pow(rho, float64(n))
	// A large trip (up to 0.4 of the capacity) keeps some levels below a
	// landing within the two rules' difference of a grid level too: each
	// level lower moves the landing up by h (1 - rho^n), about 2h/E times
	// less than the difference.
	c := max(0, int(math.Floor((shrink*x-b.SOCMin)/h))-1-rng.IntN(max(1, int(0.4/h))))
	// Per-slot: y = shrink x - e g / n; one step: y' = shrink x - e. Choose e
	// so that y = level c + f (y - y') = level c + f e (1 - g/n).
	f := 0.05 + 0.4*rng.Float64()
	e := (shrink*x - (b.SOCMin + float64(c)*h)) / (g/float64(n) + f*(1-g/float64(n)))
	const kmPerKWh = 6
	reserve := 0.2
	if top {
		// Departure needs e + reserve = level K-2 + h/2: only the top level holds it.
		reserve = (b.SOCMin + (float64(K)-1.5)*h - e) * b.CapacityKWh
	}
	p.Trip = &Trip{Depart: dep, Return: ret, DistanceKM: e * b.CapacityKWh * kmPerKWh, KMPerKWh: kmPerKWh, ReserveKWh: reserve}
	p.SOCEnd = math.Max(0, math.Min(p.SOC0, b.SOCMin+float64(c)*h)-0.01)
}

func objectiveOf(t *testing.T, p *Problem, s *Schedule) float64 {
	t.Helper()
	if err := p.Check(s); err != nil {
		t.Fatalf("constraint violated: %v", err)
	}
	_, _, f := p.Objective(s)
	return f
}

// TestOptimalExhaustive: the dynamic programme's objective equals the
// least objective over every grid path, on random small instances with
// and without a trip and export, and on instances whose trip ends just
// above a grid level (near), and its schedule meets every constraint.
func TestOptimalExhaustive(t *testing.T) {
	cases := []struct {
		T, K               int
		trip, export, near bool
	}{
		{4, 6, false, false, false}, {5, 5, false, true, false}, {6, 6, false, false, false},
		{6, 5, true, false, false}, {7, 5, true, true, false}, {5, 9, true, false, false},
		{7, 5, true, false, true}, {6, 6, true, true, true}, {8, 4, true, false, true},
	}
	for _, c := range cases {
		solved := 0
		for seed := range uint64(25) {
			name := fmt.Sprintf("T%d-K%d-trip%v-export%v-near%v-seed%d", c.T, c.K, c.trip, c.export, c.near, seed)
			rng := rand.New(rand.NewPCG(seed, 7))
			p := smallProblem(rng, c.T, c.trip, c.export)
			if c.near {
				nearGridTrip(rng, p, c.K, false)
			}
			want, ok := bruteForce(p, c.K)
			s, err := Optimal{Levels: c.K}.Schedule(p)
			if !ok {
				if err == nil || !errors.Is(err, ErrInfeasible) {
					t.Errorf("%s: exhaustive search finds no schedule, optimal says %v", name, err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: %v (exhaustive optimum %v)", name, err, want)
				continue
			}
			got := objectiveOf(t, p, s)
			if math.Abs(got-want) > 1e-9*(1+math.Abs(want)) {
				t.Errorf("%s: optimal %v, exhaustive %v", name, got, want)
			}
			solved++
		}
		if solved < 10 {
			t.Errorf("T%d K%d trip %v near %v: only %d of 25 random instances feasible; the test proves little", c.T, c.K, c.trip, c.near, solved)
		}
	}
}

// TestOptimalNaive compares with the plain enumeration on a half-hourly
// day: without a trip, with a random trip and with trips that end just
// above a grid level.
func TestOptimalNaive(t *testing.T) {
	const K = 21
	for seed := range uint64(24) {
		rng := rand.New(rand.NewPCG(seed, 8))
		kind := [...]string{"no trip", "trip", "near-grid trip"}[seed%3]
		p := smallProblem(rng, 48, seed%3 != 0, seed%2 == 1)
		if seed%3 == 2 {
			nearGridTrip(rng, p, K, true)
		}
		want, ok := naiveDP(p, K)
		s, err := Optimal{Levels: K}.Schedule(p)
		if !ok {
			if !errors.Is(err, ErrInfeasible) {
				t.Errorf("seed %d (%s): the enumeration finds no schedule, optimal says %v", seed, kind, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("seed %d (%s): %v (enumeration's optimum %v)", seed, kind, err, want)
			continue
		}
		if got := objectiveOf(t, p, s); math.Abs(got-want) > 1e-9*(1+math.Abs(want)) {
			t.Errorf("seed %d (%s): optimal %v, naive %v", seed, kind, got, want)
		}
	}
}

// TestOptimalGeneratedHomes: on generated home-days where the one-step
// trip debit used to land a level too low (issue 12 item 3: seed 7 home 19
// with the flat tariff, 1.440297 against 1.423904; seed 3 home 94 with the
// default tariff, +2.05 %; the 7 of the first 2,000 homes at seed 1 that
// differed), the programme at the default 201 levels equals the plain
// enumeration over the same grid.
func TestOptimalGeneratedHomes(t *testing.T) {
	cases := []struct {
		seed   uint64
		id     int
		tariff Tariff
	}{
		{7, 19, Flat(0.2)}, {3, 94, TimeOfUse()}, {7, 0, Flat(0.2)},
		{1, 190, TimeOfUse()}, {1, 358, TimeOfUse()}, {1, 674, TimeOfUse()}, {1, 680, TimeOfUse()},
		{1, 827, TimeOfUse()}, {1, 1584, TimeOfUse()}, {1, 1608, TimeOfUse()},
	}
	for _, c := range cases {
		cfg := DefaultConfig()
		cfg.Tariff = c.tariff
		hd, err := NewHomeDay(c.seed, c.id, &cfg)
		if err != nil {
			t.Fatal(err)
		}
		want, ok := naiveDP(hd.Problem, DefaultLevels)
		if !ok {
			t.Fatalf("seed %d home %d: the enumeration finds no schedule", c.seed, c.id)
		}
		s, err := Optimal{}.Schedule(hd.Problem)
		if err != nil {
			t.Fatal(err)
		}
		got := objectiveOf(t, hd.Problem, s)
		t.Logf("seed %d home %d (%s): optimal %.6f, enumeration %.6f", c.seed, c.id, c.tariff.Name, got, want)
		if math.Abs(got-want) > 1e-9*(1+math.Abs(want)) {
			t.Errorf("seed %d home %d: optimal %v, enumeration over the same grid %v (%+.2f%%)", c.seed, c.id, got, want, 100*(got/want-1))
		}
	}
}

// TestTripReturnLevel: for every level the EV can depart at, the
// programme's return level is the highest grid level at or below the SOC
// that the battery equation gives slot by slot over the trip.
func TestTripReturnLevel(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 9))
		const K = 41
		p := smallProblem(rng, 24, true, false)
		if seed%2 == 0 {
			nearGridTrip(rng, p, K, seed%4 == 0)
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		d, err := newDP(p, K)
		if err != nil {
			t.Fatal(err)
		}
		b := p.Battery
		h := (b.SOCMax - b.SOCMin) / (K - 1)
		rho := math.Pow(1-b.SelfDischargePerHr, p.DT)
		n := p.Trip.Return - p.Trip.Depart
		for a := range K {
			if d.phi[a] < 0 {
				continue // departure level pruned or return below SOCMin
			}
			y := b.SOCMin + float64(a)*h
			for range n {
				y = y*rho - p.Trip.EnergyKWh()/float64(n)/b.CapacityKWh
			}
			if want := int(math.Floor((y-b.SOCMin)/h + 1e-9)); d.phi[a] != want {
				t.Errorf("seed %d: departing at level %d the EV returns at SOC %.9f, level %d, but the programme lands on level %d", seed, a, y, want, d.phi[a])
			}
		}
	}
}
