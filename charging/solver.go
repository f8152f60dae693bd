package charging

import (
	"fmt"
	"math"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
)

// Options tunes Solve. The zero value is usable.
type Options struct {
	// MaxIter bounds the iterations (default 5000).
	MaxIter int
	// RelTol is the stopping tolerance on the largest per-slot change of
	// the aggregate between iterations, relative to its peak (default 1e-9).
	RelTol float64
	// VoltTol is the allowed voltage-limit violation, pu (default 1e-6).
	VoltTol float64
	// GapTol is the allowed relative duality gap (f - q) / f, checked with
	// LowerBound once the other two criteria hold (default 1e-10).
	GapTol float64
	// Step scales the primal step tau = Step / L, where L is the largest
	// number of vehicles plugged in at once (default 1; must be < 2).
	Step float64
	// DualStep scales the dual step relative to the largest one the
	// primal-dual convergence condition allows (default 0.9; must be <= 1).
	DualStep float64
	// Workers runs the vehicles' updates on this many goroutines
	// (default GOMAXPROCS). The result does not depend on it.
	Workers int
	// Aggregator turns the vehicles' schedules into the SO's per-bus sums
	// (default Exact).
	Aggregator Aggregator
	// Progress, if set, is called after every iteration.
	Progress func(Stats)
}

// Stats describes one iteration.
type Stats struct {
	Iter      int
	Objective float64 // 1/2 sum_t A(t)^2, kW^2
	Change    float64 // max_t |A_k(t) - A_{k-1}(t)|, kW
	Violation float64 // largest vmin - V_j(t), pu (<= 0 when feasible)
	Gap       float64 // relative duality gap, NaN when not computed
}

// Solution is the result of Solve. Schedules and duals are indexed like the
// problem's EVs and feeders.
type Solution struct {
	Iterations int
	Converged  bool
	Objective  float64     // 1/2 sum_t A(t)^2, kW^2
	Gap        float64     // relative duality gap at the end (NaN if never computed)
	Aggregate  []float64   // A(t) = D(t) + sum_i x_i(t), kW
	Schedules  [][]float64 // [ev][slot], kW
	Voltage    [][][]float64
	Mu         [][][]float64 // voltage multipliers [feeder][bus][slot], >= 0
	History    []Stats
}

// Solve runs the decentralized projected-gradient primal-dual method of
// DESIGN.md C2 (seed 001 eq. 10) with a Condat-Vu extrapolation on the
// dual. Each iteration:
//
//  1. the SO broadcasts the aggregate A(t) and, per bus b, the voltage price
//     w_b(t) = (2/S) sum_j mu_j(t) R_jb;
//  2. every vehicle updates x_i <- Proj_{X_i}(x_i - tau (A + w_b(i))), using
//     only its own local set and the broadcast;
//  3. the Aggregator hands the SO per-bus sums s_b(t);
//  4. the SO sets mu <- max(0, mu + sigma (vmin^2 - V^2(2 s_new - s_old))).
//
// With tau = 1/L (L the most vehicles plugged in at once, the Lipschitz
// constant of the objective's gradient) and sigma ||K||^2 <= L/2, where K
// maps schedules to voltage constraints, the iteration converges to a
// saddle point (Condat 2013, Vu 2013); the extrapolated voltage in step 4
// is what the plain Arrow-Hurwicz update of the paper lacks.
func Solve(p *Problem, opt Options) (*Solution, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	s, err := newSolver(p, opt)
	if err != nil {
		return nil, err
	}
	return s.run()
}

type solver struct {
	p     *Problem
	opt   Options
	T     int
	order []int     // solver position -> EV index
	x     []float64 // [position][slot]
	nu    []float64 // last projection shift per position (warm start)
	need  []float64 // grid energy per position, kW-slots

	groups  []Group
	gstart  []int       // first position of each group
	sums    [][]float64 // per group, this iteration
	oldSums [][]float64 // per group, previous iteration

	d, a    []float64 // baseline and aggregate
	tau     float64
	sigma   []float64     // per feeder
	mu      [][][]float64 // [f][b][t]
	price   [][][]float64 // [f][b][t]
	v2base  [][][]float64 // baseline-only V^2, [f][b][t]
	v2      [][][]float64 // V^2 with current sums
	busOf   [][]int       // [f][b] -> group index, -1 if no EVs
	workers int
	scratch [][]float64 // per worker, max(T, 3*buses) values
}

func newSolver(p *Problem, opt Options) (*solver, error) {
	if opt.MaxIter <= 0 {
		opt.MaxIter = 5000
	}
	if opt.RelTol <= 0 {
		opt.RelTol = 1e-9
	}
	if opt.VoltTol <= 0 {
		opt.VoltTol = 1e-6
	}
	if opt.GapTol <= 0 {
		opt.GapTol = 1e-10
	}
	if opt.Step == 0 {
		opt.Step = 1
	}
	if !(opt.Step > 0 && opt.Step < 2) {
		return nil, fmt.Errorf("primal step scale %v must be in (0, 2)", opt.Step)
	}
	if opt.DualStep == 0 {
		opt.DualStep = 0.9
	}
	if !(opt.DualStep > 0 && opt.DualStep <= 1) {
		return nil, fmt.Errorf("dual step scale %v must be in (0, 1]", opt.DualStep)
	}
	if opt.Aggregator == nil {
		opt.Aggregator = Exact{}
	}
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	T := p.Slots
	s := &solver{p: p, opt: opt, T: T, workers: opt.Workers}
	n := len(p.EVs)
	s.order = make([]int, n)
	for i := range s.order {
		s.order[i] = i
	}
	sort.SliceStable(s.order, func(a, b int) bool {
		ea, eb := &p.EVs[s.order[a]], &p.EVs[s.order[b]]
		if ea.Feeder != eb.Feeder {
			return ea.Feeder < eb.Feeder
		}
		return ea.Bus < eb.Bus
	})
	s.x = make([]float64, n*T)
	s.nu = make([]float64, n)
	s.need = make([]float64, n)
	s.busOf = make([][]int, len(p.Feeders))
	for fi := range p.Feeders {
		s.busOf[fi] = make([]int, len(p.Feeders[fi].Buses))
		for b := range s.busOf[fi] {
			s.busOf[fi][b] = -1
		}
	}
	plugged := make([]float64, T)
	for pos, i := range s.order {
		ev := &p.EVs[i]
		s.need[pos] = ev.Need(p.DT)
		s.nu[pos] = math.NaN()
		if pos == 0 || ev.Feeder != p.EVs[s.order[pos-1]].Feeder || ev.Bus != p.EVs[s.order[pos-1]].Bus {
			s.busOf[ev.Feeder][ev.Bus] = len(s.groups)
			s.groups = append(s.groups, Group{Feeder: ev.Feeder, Bus: ev.Bus})
			s.gstart = append(s.gstart, pos)
		}
		g := &s.groups[len(s.groups)-1]
		g.EVs = s.order[s.gstart[len(s.groups)-1] : pos+1]
		// Start from the flat schedule that meets the demand.
		w := ev.Depart - ev.Arrive
		row := s.x[pos*T : (pos+1)*T]
		for t := ev.Arrive; t < ev.Depart; t++ {
			row[t] = s.need[pos] / float64(w)
			plugged[t]++
		}
	}
	maxBuses := 0
	for fi := range p.Feeders {
		maxBuses = max(maxBuses, len(p.Feeders[fi].Buses))
	}
	s.scratch = make([][]float64, s.workers)
	for w := range s.scratch {
		s.scratch[w] = make([]float64, max(T, 3*maxBuses))
	}
	s.sums = make([][]float64, len(s.groups))
	s.oldSums = make([][]float64, len(s.groups))
	for g := range s.groups {
		s.sums[g] = make([]float64, T)
		s.oldSums[g] = make([]float64, T)
	}
	L := 1.0
	for _, c := range plugged {
		L = math.Max(L, c)
	}
	s.tau = opt.Step / L
	s.d = p.Baseline()
	s.a = make([]float64, T)

	nf := len(p.Feeders)
	s.mu = make([][][]float64, nf)
	s.price = make([][][]float64, nf)
	s.v2base = make([][][]float64, nf)
	s.v2 = make([][][]float64, nf)
	s.sigma = make([]float64, nf)
	for fi := range p.Feeders {
		f := &p.Feeders[fi]
		nb := len(f.Buses)
		s.mu[fi] = alloc2(nb, T)
		s.price[fi] = alloc2(nb, T)
		s.v2base[fi] = alloc2(nb, T)
		s.v2[fi] = alloc2(nb, T)
		pt, qt, v2, sc := make([]float64, nb), make([]float64, nb), make([]float64, nb), make([]float64, nb)
		for t := 0; t < T; t++ {
			for b := 0; b < nb; b++ {
				pt[b], qt[b] = f.BaseP[b][t], f.BaseQ[b][t]
			}
			f.VoltageSquared(pt, qt, v2, sc)
			for b := 0; b < nb; b++ {
				s.v2base[fi][b][t] = v2[b]
			}
		}
		// Condat-Vu: 1/tau - sigma ||K||^2 >= L/2.
		k2 := s.normK2(fi)
		if k2 > 0 {
			s.sigma[fi] = opt.DualStep * (1/s.tau - L/2) / k2
		}
	}
	return s, nil
}

func alloc2(n, m int) [][]float64 {
	flat := make([]float64, n*m)
	out := make([][]float64, n)
	for i := range out {
		out[i] = flat[i*m : (i+1)*m : (i+1)*m]
	}
	return out
}

// normK2 returns the largest eigenvalue of K K^T for one feeder and slot,
// where K maps every vehicle's power to the feeder's squared voltages:
// (2/S)^2 R diag(n_b) R with n_b vehicles at bus b. It is an upper bound
// over slots, since fewer vehicles are plugged in at other times.
func (s *solver) normK2(fi int) float64 {
	f := &s.p.Feeders[fi].Feeder
	nb := len(f.Buses)
	count := make([]float64, nb)
	for gi, g := range s.groups {
		if g.Feeder == fi {
			count[g.Bus] = float64(len(s.groups[gi].EVs))
		}
	}
	v, w, z := make([]float64, nb), make([]float64, nb), make([]float64, nb)
	for b := 1; b < nb; b++ {
		v[b] = 1
	}
	lam := 0.0
	for it := 0; it < 200; it++ {
		f.MulR(v, w)
		for b := range w {
			w[b] *= count[b]
		}
		f.MulR(w, z)
		z[0] = 0
		norm := 0.0
		for _, e := range z {
			norm += e * e
		}
		norm = math.Sqrt(norm)
		if norm == 0 {
			return 0
		}
		next := 0.0
		for b := range z {
			next += z[b] * v[b]
		}
		vn := 0.0
		for b := range v {
			vn += v[b] * v[b]
		}
		next /= vn
		for b := range z {
			v[b] = z[b] / norm
		}
		if math.Abs(next-lam) <= 1e-12*next {
			lam = next
			break
		}
		lam = next
	}
	c := 2 / f.SBase
	// Power iteration converges from below; pad by 1% to stay an upper bound.
	return 1.01 * c * c * lam
}

func (s *solver) run() (*Solution, error) {
	p, T := s.p, s.T
	// Initial aggregate from the starting schedules.
	if err := s.aggregate(-1); err != nil {
		return nil, err
	}
	s.collect()
	sol := &Solution{Gap: math.NaN()}
	prev := make([]float64, T)
	lastGapCheck := -1000
	for k := 0; k < s.opt.MaxIter; k++ {
		copy(prev, s.a)
		for g := range s.sums {
			s.oldSums[g], s.sums[g] = s.sums[g], s.oldSums[g]
		}
		if err := s.aggregate(k); err != nil {
			return nil, err
		}
		s.collect()
		viol := s.updateDuals()
		st := Stats{Iter: k + 1, Objective: Objective(s.a), Violation: viol, Gap: math.NaN()}
		peak := 0.0
		for t := 0; t < T; t++ {
			st.Change = math.Max(st.Change, math.Abs(s.a[t]-prev[t]))
			peak = math.Max(peak, math.Abs(s.a[t]))
		}
		done := false
		if st.Change <= s.opt.RelTol*peak && viol <= s.opt.VoltTol && k-lastGapCheck >= 10 {
			lastGapCheck = k
			st.Gap = (st.Objective - LowerBound(p, s.a, s.mu)) / st.Objective
			sol.Gap = st.Gap
			done = st.Gap <= s.opt.GapTol
		}
		sol.History = append(sol.History, st)
		if s.opt.Progress != nil {
			s.opt.Progress(st)
		}
		sol.Iterations = k + 1
		if done {
			sol.Converged = true
			break
		}
	}
	sol.Objective = Objective(s.a)
	sol.Aggregate = append([]float64(nil), s.a...)
	// Put the schedules in the problem's EV order in place (following the
	// permutation's cycles with one spare row), so that a million-EV
	// solution does not need a second copy of every schedule.
	s.permuteToEVOrder()
	sol.Schedules = make([][]float64, len(p.EVs))
	for i := range sol.Schedules {
		sol.Schedules[i] = s.x[i*T : (i+1)*T : (i+1)*T]
	}
	sol.Mu = s.mu
	// Squared voltages become voltages in place: the solver is done with them.
	for fi := range s.v2 {
		for b := range s.v2[fi] {
			for t, v := range s.v2[fi][b] {
				s.v2[fi][b][t] = math.Sqrt(max(v, 0))
			}
		}
	}
	sol.Voltage = s.v2
	return sol, nil
}

// aggregate runs every vehicle's primal update (skipped when iter < 0) and
// the per-bus aggregation, spread over the workers by group. Each group is
// handled by exactly one goroutine in a fixed order, so the result does not
// depend on scheduling.
func (s *solver) aggregate(iter int) error {
	ng := len(s.groups)
	errs := make([]error, ng)
	work := func(w, g int) {
		grp := s.groups[g]
		first := s.gstart[g]
		if iter >= 0 {
			price := s.price[grp.Feeder][grp.Bus]
			y := s.scratch[w][:s.T]
			for k := range grp.EVs {
				pos := first + k
				s.step(pos, price, y)
			}
		}
		x := s.x[first*s.T : (first+len(grp.EVs))*s.T]
		errs[g] = s.opt.Aggregator.Aggregate(iter, grp, x, s.T, s.sums[g])
	}
	s.parallel(ng, work)
	for g, err := range errs {
		if err != nil {
			grp := s.groups[g]
			return fmt.Errorf("aggregating bus %q of feeder %q in iteration %d: %w", s.p.Feeders[grp.Feeder].Buses[grp.Bus].Name, s.p.Feeders[grp.Feeder].Name, iter, err)
		}
	}
	return nil
}

// step is one vehicle's primal update: it sees only its own local set and
// the SO's broadcast (aggregate and its bus's price).
func (s *solver) step(pos int, price, y []float64) {
	ev := &s.p.EVs[s.order[pos]]
	row := s.x[pos*s.T : (pos+1)*s.T]
	a, d := ev.Arrive, ev.Depart
	win := y[a:d]
	for t := a; t < d; t++ {
		win[t-a] = row[t] - s.tau*(s.a[t]+price[t])
	}
	s.nu[pos] = Project(win, ev.PMax, s.need[pos], s.nu[pos], row[a:d])
}

// collect sums the per-bus sums into the aggregate and refreshes voltages.
func (s *solver) collect() {
	for t := range s.a {
		s.a[t] = s.d[t]
	}
	for g := range s.groups {
		for t, v := range s.sums[g] {
			s.a[t] += v
		}
	}
}

// updateDuals is the SO's step, feeder by feeder in parallel: it refreshes
// the voltages from the new sums, takes the dual step on the extrapolated
// sums, computes the next broadcast prices, and returns the largest
// violation vmin - V.
func (s *solver) updateDuals() float64 {
	nf := len(s.p.Feeders)
	worst := make([]float64, nf) // lowest V^2 per feeder
	s.parallel(nf, func(w, fi int) { worst[fi] = s.feederDual(fi, s.scratch[w]) })
	lowest := math.Inf(1)
	for _, v := range worst {
		lowest = min(lowest, v)
	}
	return s.p.VMin - math.Sqrt(max(lowest, 0))
}

func (s *solver) feederDual(fi int, buf []float64) float64 {
	f := &s.p.Feeders[fi].Feeder
	nb := len(f.Buses)
	load, ext, out := buf[:nb], buf[nb:2*nb], buf[2*nb:]
	c := 2 / f.SBase
	vmin2 := s.p.VMin * s.p.VMin
	mu, v2, v2base, price := s.mu[fi], s.v2[fi], s.v2base[fi], s.price[fi]
	lowest := math.Inf(1)
	for t := 0; t < s.T; t++ {
		clear(load)
		clear(ext)
		for b := 1; b < nb; b++ {
			if g := s.busOf[fi][b]; g >= 0 {
				load[b] = s.sums[g][t]
				ext[b] = 2*s.sums[g][t] - s.oldSums[g][t]
			}
		}
		f.MulR(load, out)
		v2[0][t] = v2base[0][t]
		for b := 1; b < nb; b++ {
			v := v2base[b][t] - c*out[b]
			v2[b][t] = v
			lowest = min(lowest, v)
		}
		if s.sigma[fi] == 0 {
			continue
		}
		f.MulR(ext, out)
		nonzero := false
		for b := 1; b < nb; b++ {
			m := max(0, mu[b][t]+s.sigma[fi]*(vmin2-(v2base[b][t]-c*out[b])))
			mu[b][t] = m
			load[b] = m // reuse as the multiplier vector for the price
			nonzero = nonzero || m != 0
		}
		// The price each bus's vehicles see next: w_b = (2/S) (R mu)_b.
		if !nonzero {
			for b := range price {
				price[b][t] = 0
			}
			continue
		}
		load[0] = 0
		f.MulR(load, out)
		for b := 0; b < nb; b++ {
			price[b][t] = c * out[b]
		}
	}
	return lowest
}

// parallel runs fn(worker, i) for i in 0..n-1 on the workers. Each index
// is handled once, and callers write only to state owned by that index (or
// to the worker's scratch space), so the outcome does not depend on
// scheduling.
func (s *solver) parallel(n int, fn func(worker, i int)) {
	if s.workers <= 1 || n < 2 {
		for i := 0; i < n; i++ {
			fn(0, i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < min(s.workers, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(w, i)
			}
		}()
	}
	wg.Wait()
}

// permuteToEVOrder moves row pos of x to row order[pos]. It runs once, at
// the end of a solve, and invalidates the solver's position-based state.
func (s *solver) permuteToEVOrder() {
	T := s.T
	done := make([]bool, len(s.order))
	tmp := make([]float64, T)
	for start := range s.order {
		if done[start] || s.order[start] == start {
			done[start] = true
			continue
		}
		// Row start goes to order[start], whose row goes on, and so on
		// until the cycle returns to start.
		copy(tmp, s.x[start*T:(start+1)*T])
		pos := start
		for {
			dst := s.order[pos]
			done[pos] = true
			if dst == start {
				copy(s.x[dst*T:(dst+1)*T], tmp)
				break
			}
			row := s.x[dst*T : (dst+1)*T]
			for t := range row {
				row[t], tmp[t] = tmp[t], row[t]
			}
			pos = dst
		}
	}
}
