package charging

import (
	"math"
	"sort"
)

// LowerBound returns a lower bound on the optimal valley-filling objective,
// from Lagrangian duality, that does not depend on how a candidate solution
// was computed. With multipliers lambda(t) on the definition of the
// aggregate and mu[f][b][t] >= 0 on the voltage limits,
//
//	q(lambda, mu) = <lambda, D> - 1/2 ||lambda||^2
//	              + sum_i min_{x in X_i} <lambda + (2/S) (R mu)_b(i), x>
//	              + sum_{f,b,t} mu (vmin^2 - Vbase_b(t)^2)
//
// and q <= f* for every lambda and every mu >= 0. Each inner minimum is a
// linear programme over the vehicle's local set, solved exactly by filling
// its cheapest slots at full power (a fractional knapsack), so the bound
// shares no code path with the projected-gradient solver. Setting lambda to
// a candidate's aggregate D + X and mu to its multipliers makes f(x) - q an
// optimality certificate: because f is 1-strongly convex in the aggregate,
// a feasible x with gap g has its aggregate within sqrt(2g) kW of the
// optimum in every slot. mu may be nil (no voltage terms).
//
// A battery vehicle's inner minimum is the linear programme over its SOC
// tube, solved exactly by batteryBound's dynamic programme, which likewise
// shares no code with the projection. With wear costs (EV.Degradation) the
// objective also holds the vehicles' wear; subtract the candidate's wear
// (Vehicle.Wear) from q before comparing it with Objective.
func LowerBound(p *Problem, lambda []float64, mu [][][]float64) float64 {
	T := p.Slots
	d := p.Baseline()
	q := 0.0
	for t := 0; t < T; t++ {
		q += lambda[t]*d[t] - 0.5*lambda[t]*lambda[t]
	}
	// price[f][b][t] = (2/S) (R mu_f(:,t))_b
	price := make([][][]float64, len(p.Feeders))
	for fi := range p.Feeders {
		f := &p.Feeders[fi]
		n := len(f.Buses)
		price[fi] = make([][]float64, n)
		for b := range price[fi] {
			price[fi][b] = make([]float64, T)
		}
		if mu == nil {
			continue
		}
		w, out := make([]float64, n), make([]float64, n)
		v2, scratch := make([]float64, n), make([]float64, n)
		pt, qt := make([]float64, n), make([]float64, n)
		for t := 0; t < T; t++ {
			for b := 0; b < n; b++ {
				w[b] = mu[fi][b][t]
				pt[b], qt[b] = f.BaseP[b][t], f.BaseQ[b][t]
			}
			f.MulR(w, out)
			f.VoltageSquared(pt, qt, v2, scratch)
			for b := 1; b < n; b++ {
				price[fi][b][t] = 2 / f.SBase * out[b]
				q += mu[fi][b][t] * (p.VMin*p.VMin - v2[b])
			}
		}
	}
	idx := make([]int, T)
	g := make([]float64, T)
	for i := range p.EVs {
		ev := &p.EVs[i]
		c := price[ev.Feeder][ev.Bus]
		if ev.Battery() {
			for t := range g {
				g[t] = lambda[t] + c[t]
			}
			bq, _ := batteryBound(ev, p.DT, g)
			q += bq
			continue
		}
		win := idx[:0]
		for t := ev.Arrive; t < ev.Depart; t++ {
			win = append(win, t)
		}
		sort.Slice(win, func(a, b int) bool { return lambda[win[a]]+c[win[a]] < lambda[win[b]]+c[win[b]] })
		need := ev.Need(p.DT)
		for _, t := range win {
			if need <= 0 {
				break
			}
			take := math.Min(need, ev.PMax)
			q += take * (lambda[t] + c[t])
			need -= take
		}
	}
	return q
}

// Objective returns 1/2 sum_t (D(t) + X(t))^2 for the aggregate
// a(t) = D(t) + X(t), in kW^2.
func Objective(aggregate []float64) float64 {
	s := 0.0
	for _, v := range aggregate {
		s += v * v
	}
	return 0.5 * s
}
