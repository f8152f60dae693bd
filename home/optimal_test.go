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
			// Drive the whole trip at once, landing on the grid level at or
			// below the exact SOC on return.
			tr := p.Trip
			if soc*b.CapacityKWh < tr.DistanceKM/tr.KMPerKWh+tr.ReserveKWh-1e-9 {
				return
			}
			n := tr.Return - tr.Depart
			exact := soc*math.Pow(rho, float64(n)) - tr.DistanceKM/tr.KMPerKWh/b.CapacityKWh
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

// naiveDP is an O(T K^3) dynamic programme over (previous level, level)
// that enumerates the next level instead of using line envelopes; it checks
// the envelope code on instances too large to enumerate (no trip).
func naiveDP(p *Problem, K int) float64 {
	T := len(p.Load)
	b := p.Battery
	h := (b.SOCMax - b.SOCMin) / float64(K-1)
	rho := math.Pow(1-b.SelfDischargePerHr, p.DT)
	inf := math.Inf(1)
	soc := func(t, a int) float64 {
		if t == 0 {
			return p.SOC0
		}
		return b.SOCMin + float64(a)*h
	}
	meter := func(t, a, c int) float64 {
		d := soc(t+1, c) - soc(t, a)*rho
		var u float64
		if d >= 0 {
			u = d * b.CapacityKWh / (b.EtaCharge * p.DT)
			if u > b.ChargeMaxKW*(1+1e-9) {
				return inf
			}
		} else {
			u = d * b.EtaDischarge * b.CapacityKWh / p.DT
			if -u > b.DischargeMaxKW*(1+1e-9) {
				return inf
			}
		}
		m := p.Load[t] + u
		if !p.AllowExport && m < -1e-9 {
			return inf
		}
		return m
	}
	// V[a][c]: cost of slots t..T-1 given slot t goes a -> c.
	V := make([][]float64, K)
	next := make([][]float64, K)
	for a := range K {
		V[a] = make([]float64, K)
		next[a] = make([]float64, K)
	}
	for t := T - 1; t >= 0; t-- {
		for a := range K {
			if t == 0 && a > 0 {
				break
			}
			for c := range K {
				x := meter(t, a, c)
				if x == inf || (t == T-1 && soc(T, c) < p.SOCEnd-1e-9) {
					V[a][c] = inf
					continue
				}
				v := p.Alpha * p.Price[t] * x * p.DT
				if t < T-1 {
					bestN := inf
					for e := range K {
						y := meter(t+1, c, e)
						if y == inf || next[c][e] == inf {
							continue
						}
						bestN = math.Min(bestN, (1-p.Alpha)*p.Beta*(y-x)*(y-x)+next[c][e])
					}
					v += bestN
				}
				V[a][c] = v
			}
		}
		V, next = next, V
	}
	best := inf
	for c := range K {
		best = math.Min(best, next[0][c])
	}
	return best
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
// and without a trip and export, and its schedule meets every constraint.
func TestOptimalExhaustive(t *testing.T) {
	cases := []struct {
		T, K         int
		trip, export bool
	}{
		{4, 6, false, false}, {5, 5, false, true}, {6, 6, false, false},
		{6, 5, true, false}, {7, 5, true, true}, {5, 9, true, false},
	}
	for _, c := range cases {
		solved := 0
		for seed := range uint64(25) {
			name := fmt.Sprintf("T%d-K%d-trip%v-export%v-seed%d", c.T, c.K, c.trip, c.export, seed)
			rng := rand.New(rand.NewPCG(seed, 7))
			p := smallProblem(rng, c.T, c.trip, c.export)
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
			t.Errorf("T%d K%d trip %v: only %d of 25 random instances feasible; the test proves little", c.T, c.K, c.trip, solved)
		}
	}
}

// TestOptimalNaive compares with the O(K^3) programme on a full day.
func TestOptimalNaive(t *testing.T) {
	for seed := range uint64(6) {
		rng := rand.New(rand.NewPCG(seed, 8))
		p := smallProblem(rng, 48, false, seed%2 == 1)
		const K = 21
		want := naiveDP(p, K)
		s, err := Optimal{Levels: K}.Schedule(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := objectiveOf(t, p, s); math.Abs(got-want) > 1e-9*(1+math.Abs(want)) {
			t.Errorf("seed %d: optimal %v, naive %v", seed, got, want)
		}
	}
}
