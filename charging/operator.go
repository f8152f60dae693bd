package charging

import (
	"fmt"
	"math"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/gridveil/gridveil/grid"
)

// Bus is a bus that hosts vehicles, as the system operator knows it: where
// it is and how many vehicles report there (vehicles join a bus through an
// authenticated session, so the count is no secret).
type Bus struct {
	Feeder, Bus int // feeder index, bus index within the feeder
	Vehicles    int
}

// OperatorConfig is everything the system operator knows before the first
// iteration: the grid and its baseline (measured, or estimated from LDP
// meter readings), the voltage limit, which buses host vehicles, and how
// many vehicles are plugged in at once at most (from which the step size
// follows). It holds no vehicle's local set.
type OperatorConfig struct {
	Slots   int
	DT      float64
	VMin    float64
	Feeders []Feeder
	// Buses lists the buses with vehicles, each once, sorted by (Feeder,
	// Bus). Sums are exchanged in this order.
	Buses []Bus
	// MaxPlugged is the most vehicles plugged in during any one slot: the
	// Lipschitz constant L of the objective's gradient (at least 1 is used).
	MaxPlugged int
	// Options sets the tolerances, step scales, iteration limit and the
	// goroutines the feeders' dual steps run on; Aggregator and Progress
	// are the driver's and are ignored here.
	Options Options
}

// Operator is the system operator's side of coordinated charging: a
// deterministic state machine that consumes per-bus sums and produces the
// next broadcast (the aggregate A(t), per-bus voltage prices and the step
// size) and the voltage multipliers (docs/ARCHITECTURE.md C2, seed 001 eq. 10, the
// mu-update, with a Condat-Vu extrapolation). It does no I/O: a driver
// moves sums in and broadcasts out, in one process (Solve) or over a
// network.
//
// One iteration, driven from outside:
//
//	sums := op.Next()          // buffers for this iteration's per-bus sums
//	... fill sums[g] for every bus g (from the vehicles' reports) ...
//	st, certify := op.Update() // new aggregate, multipliers, prices
//	if certify { op.Certify(q) } // q: a Lagrangian lower bound at the new broadcast
//	if op.Done() { ... }
//
// before which Start consumes the sums of the vehicles' starting schedules.
type Operator struct {
	cfg     OperatorConfig
	opt     Options
	T       int
	d, a    []float64     // baseline and aggregate
	prev    []float64     // aggregate before the current iteration
	sums    [][]float64   // per bus, this iteration
	oldSums [][]float64   // per bus, previous iteration
	busOf   [][]int       // [f][b] -> index into cfg.Buses, -1 if no vehicles
	tau     float64       // primal step
	sigma   []float64     // dual step per feeder
	mu      [][][]float64 // [f][b][t]
	price   [][][]float64 // [f][b][t]
	v2base  [][][]float64 // baseline-only V^2, [f][b][t]
	v2      [][][]float64 // V^2 with current sums
	workers int
	scratch [][]float64 // per worker, 3*buses*slots values

	iter         int // completed iterations
	started      bool
	inIteration  bool
	lastGapCheck int
	gap          float64
	converged    bool
	history      []Stats
}

// NewOperator checks the configuration and sets up the operator's state:
// baseline voltages, the primal step 1/L and each feeder's dual step.
func NewOperator(cfg OperatorConfig) (*Operator, error) {
	opt, err := cfg.Options.withDefaults()
	if err != nil {
		return nil, err
	}
	T := cfg.Slots
	if T <= 0 {
		return nil, fmt.Errorf("%w: slots = %d; the horizon needs at least one slot", ErrInvalidProblem, T)
	}
	o := &Operator{cfg: cfg, opt: opt, T: T, workers: opt.Workers, lastGapCheck: -1000, gap: math.NaN()}
	nf := len(cfg.Feeders)
	o.busOf = make([][]int, nf)
	maxBuses := 0
	for fi := range cfg.Feeders {
		nb := len(cfg.Feeders[fi].Buses)
		maxBuses = max(maxBuses, nb)
		o.busOf[fi] = make([]int, nb)
		for b := range o.busOf[fi] {
			o.busOf[fi][b] = -1
		}
	}
	for g, b := range cfg.Buses {
		if b.Feeder < 0 || b.Feeder >= nf || b.Bus <= 0 || b.Bus >= len(cfg.Feeders[b.Feeder].Buses) {
			return nil, fmt.Errorf("%w: vehicle bus %d (feeder %d, bus %d) is not a load bus of the region", ErrInvalidProblem, g, b.Feeder, b.Bus)
		}
		if o.busOf[b.Feeder][b.Bus] >= 0 {
			return nil, fmt.Errorf("%w: feeder %d bus %d listed twice among the vehicle buses", ErrInvalidProblem, b.Feeder, b.Bus)
		}
		if g > 0 && (b.Feeder < cfg.Buses[g-1].Feeder || b.Feeder == cfg.Buses[g-1].Feeder && b.Bus < cfg.Buses[g-1].Bus) {
			return nil, fmt.Errorf("%w: vehicle buses must be sorted by feeder and bus (entry %d is out of order)", ErrInvalidProblem, g)
		}
		o.busOf[b.Feeder][b.Bus] = g
	}
	o.scratch = make([][]float64, o.workers)
	for w := range o.scratch {
		o.scratch[w] = make([]float64, 3*maxBuses*T)
	}
	o.sums = make([][]float64, len(cfg.Buses))
	o.oldSums = make([][]float64, len(cfg.Buses))
	for g := range cfg.Buses {
		o.sums[g] = make([]float64, T)
		o.oldSums[g] = make([]float64, T)
	}
	L := math.Max(1, float64(cfg.MaxPlugged))
	o.tau = opt.Step / L
	o.d = regionBaseline(cfg.Feeders, T)
	o.a = make([]float64, T)
	o.prev = make([]float64, T)

	o.mu = make([][][]float64, nf)
	o.price = make([][][]float64, nf)
	o.v2base = make([][][]float64, nf)
	o.v2 = make([][][]float64, nf)
	o.sigma = make([]float64, nf)
	for fi := range cfg.Feeders {
		f := &cfg.Feeders[fi]
		nb := len(f.Buses)
		o.mu[fi] = alloc2(nb, T)
		o.price[fi] = alloc2(nb, T)
		o.v2base[fi] = alloc2(nb, T)
		o.v2[fi] = alloc2(nb, T)
		pt, qt, v2, sc := make([]float64, nb), make([]float64, nb), make([]float64, nb), make([]float64, nb)
		for t := 0; t < T; t++ {
			for b := 0; b < nb; b++ {
				pt[b], qt[b] = f.BaseP[b][t], f.BaseQ[b][t]
			}
			f.VoltageSquared(pt, qt, v2, sc)
			for b := 0; b < nb; b++ {
				o.v2base[fi][b][t] = v2[b]
			}
		}
		// Condat-Vu: 1/tau - sigma ||K||^2 >= L/2.
		k2 := o.normK2(fi)
		if k2 > 0 {
			o.sigma[fi] = opt.DualStep * (1/o.tau - L/2) / k2
		}
	}
	return o, nil
}

// withDefaults fills in the zero fields of Options and checks the rest.
func (opt Options) withDefaults() (Options, error) {
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
		return opt, fmt.Errorf("primal step scale %v must be in (0, 2)", opt.Step)
	}
	if opt.DualStep == 0 {
		opt.DualStep = 0.9
	}
	if !(opt.DualStep > 0 && opt.DualStep <= 1) {
		return opt, fmt.Errorf("dual step scale %v must be in (0, 1]", opt.DualStep)
	}
	if opt.Aggregator == nil {
		opt.Aggregator = Exact{}
	}
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	return opt, nil
}

// regionBaseline is D(t), the total baseline active load of the feeders.
func regionBaseline(feeders []Feeder, slots int) []float64 {
	d := make([]float64, slots)
	for fi := range feeders {
		for _, row := range feeders[fi].BaseP {
			for t, v := range row {
				d[t] += v
			}
		}
	}
	return d
}

// Tau is the primal step size every vehicle uses.
func (o *Operator) Tau() float64 { return o.tau }

// Buses returns the buses with vehicles, in the order of the sums.
func (o *Operator) Buses() []Bus { return o.cfg.Buses }

// Iteration is the number of iterations completed.
func (o *Operator) Iteration() int { return o.iter }

// Aggregate is the current broadcast aggregate A(t) = D(t) + sum_b s_b(t),
// kW, as the SO sees it. It aliases the operator's state.
func (o *Operator) Aggregate() []float64 { return o.a }

// Price is the voltage price w_b(t) = (2/S) sum_j mu_j(t) R_jb broadcast
// to the vehicles of bus g (an index into Buses). It aliases the
// operator's state.
func (o *Operator) Price(g int) []float64 {
	b := o.cfg.Buses[g]
	return o.price[b.Feeder][b.Bus]
}

// Mu returns the voltage multipliers [feeder][bus][slot], >= 0. They alias
// the operator's state.
func (o *Operator) Mu() [][][]float64 { return o.mu }

// Sums returns the per-bus sums the SO holds for the current iteration,
// [bus][slot] in the order of Buses. They alias the operator's state.
func (o *Operator) Sums() [][]float64 { return o.sums }

// Start consumes the per-bus sums of the vehicles' starting schedules,
// written into Sums(), and forms the first broadcast aggregate.
func (o *Operator) Start() {
	o.collect()
	o.started = true
}

// Next begins an iteration and returns the buffers for its per-bus sums,
// [bus][slot] in the order of Buses; the driver fills every one before
// Update. The previous iteration's sums are kept for the extrapolation.
func (o *Operator) Next() [][]float64 {
	copy(o.prev, o.a)
	for g := range o.sums {
		o.oldSums[g], o.sums[g] = o.sums[g], o.oldSums[g]
	}
	o.inIteration = true
	return o.sums
}

// Update consumes the iteration's sums: it forms the new aggregate,
// refreshes the voltages, takes the dual step on the extrapolated sums and
// computes the next prices. It returns the iteration's statistics and
// whether the stopping tests on change and voltage hold, in which case the
// driver should obtain a Lagrangian lower bound at the new broadcast
// (LowerBound, or BoundBase plus the vehicles' Bound terms) and pass it to
// Certify.
func (o *Operator) Update() (Stats, bool) {
	o.collect()
	viol := o.updateDuals()
	k := o.iter
	st := Stats{Iter: k + 1, Objective: Objective(o.a), Violation: viol, Gap: math.NaN()}
	peak := 0.0
	for t := 0; t < o.T; t++ {
		st.Change = math.Max(st.Change, math.Abs(o.a[t]-o.prev[t]))
		peak = math.Max(peak, math.Abs(o.a[t]))
	}
	certify := st.Change <= o.opt.RelTol*peak && viol <= o.opt.VoltTol && k-o.lastGapCheck >= 10
	if certify {
		o.lastGapCheck = k
	}
	o.history = append(o.history, st)
	o.iter++
	o.inIteration = false
	return st, certify
}

// Certify takes a Lagrangian lower bound q on the optimal objective at the
// current broadcast (lambda = the aggregate, mu = the multipliers) and
// records the relative duality gap; a gap within tolerance ends the run as
// converged. It returns the iteration's statistics with the gap.
func (o *Operator) Certify(q float64) Stats {
	st := &o.history[len(o.history)-1]
	st.Gap = (st.Objective - q) / st.Objective
	o.gap = st.Gap
	o.converged = st.Gap <= o.opt.GapTol
	return *st
}

// BoundBase is the system operator's part of the Lagrangian lower bound at
// the current broadcast: <A, D> - 1/2 ||A||^2 + sum mu (vmin^2 - Vbase^2).
// Adding every vehicle's Bound term on the same broadcast gives the bound
// LowerBound computes, so the SO can certify a solution from the vehicles'
// scalar terms without seeing any local set.
func (o *Operator) BoundBase() float64 {
	q := 0.0
	for t := 0; t < o.T; t++ {
		q += o.a[t]*o.d[t] - 0.5*o.a[t]*o.a[t]
	}
	vmin2 := o.cfg.VMin * o.cfg.VMin
	for fi := range o.mu {
		for b := 1; b < len(o.mu[fi]); b++ {
			for t, m := range o.mu[fi][b] {
				q += m * (vmin2 - o.v2base[fi][b][t])
			}
		}
	}
	return q
}

// Done reports whether the run is over: certified optimal, or out of
// iterations.
func (o *Operator) Done() bool { return o.converged || o.iter >= o.opt.MaxIter }

// Converged reports whether a certified gap within tolerance ended the run.
func (o *Operator) Converged() bool { return o.converged }

// Gap is the last certified relative duality gap (NaN if none yet).
func (o *Operator) Gap() float64 { return o.gap }

// History returns the statistics of every iteration so far.
func (o *Operator) History() []Stats { return o.history }

// VoltageSquared returns V^2 with the current sums, [feeder][bus][slot].
// It aliases the operator's state.
func (o *Operator) VoltageSquared() [][][]float64 { return o.v2 }

// collect sums the per-bus sums into the aggregate.
func (o *Operator) collect() {
	for t := range o.a {
		o.a[t] = o.d[t]
	}
	for g := range o.sums {
		for t, v := range o.sums[g] {
			o.a[t] += v
		}
	}
}

// normK2 returns the largest eigenvalue of K K^T for one feeder and slot,
// where K maps every vehicle's power to the feeder's squared voltages:
// (2/S)^2 R diag(n_b) R with n_b vehicles at bus b. It is an upper bound
// over slots, since fewer vehicles are plugged in at other times.
func (o *Operator) normK2(fi int) float64 {
	f := &o.cfg.Feeders[fi].Feeder
	nb := len(f.Buses)
	count := make([]float64, nb)
	for _, b := range o.cfg.Buses {
		if b.Feeder == fi {
			count[b.Bus] = float64(b.Vehicles)
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

// updateDuals is the SO's step, feeder by feeder in parallel: it refreshes
// the voltages from the new sums, takes the dual step on the extrapolated
// sums, computes the next broadcast prices, and returns the largest
// violation vmin - V.
func (o *Operator) updateDuals() float64 {
	nf := len(o.cfg.Feeders)
	worst := make([]float64, nf) // lowest V^2 per feeder
	parallel(o.workers, nf, func(w, fi int) { worst[fi] = o.feederDual(fi, o.scratch[w]) })
	lowest := math.Inf(1)
	for _, v := range worst {
		if v < lowest {
			lowest = v
		}
	}
	return o.cfg.VMin - math.Sqrt(max(lowest, 0))
}

// feederDual is one feeder's part of updateDuals. It works on whole rows
// of slots: each product with R walks the feeder's tree once, moving
// rows of T values, instead of once per slot, and the voltages and the
// multipliers come out of one pass over the feeder's rows. The arithmetic
// for every slot is the same as with grid.Feeder.MulR slot by slot,
// operation for operation, so the results do not change. buf holds
// 3*buses*T values.
func (o *Operator) feederDual(fi int, buf []float64) float64 {
	f := &o.cfg.Feeders[fi].Feeder
	nb, T := len(f.Buses), o.T
	load, ext, out := buf[:nb*T], buf[nb*T:2*nb*T], buf[2*nb*T:3*nb*T]
	c := 2 / f.SBase
	vmin2 := o.cfg.VMin * o.cfg.VMin
	sigma := o.sigma[fi]
	mu, v2, v2base, price := o.mu[fi], o.v2[fi], o.v2base[fi], o.price[fi]
	// The loads (this iteration's sums) and the extrapolated loads
	// 2 s_new - s_old, one row per bus, zero where no vehicle reports.
	for b := 0; b < nb; b++ {
		lb, eb := load[b*T:(b+1)*T], ext[b*T:(b+1)*T]
		g := -1
		if b > 0 {
			g = o.busOf[fi][b]
		}
		if g < 0 {
			clear(lb)
			clear(eb)
			continue
		}
		s, old := o.sums[g][:T], o.oldSums[g][:T]
		copy(lb, s)
		for t := range eb {
			eb[t] = 2*s[t] - old[t]
		}
	}
	mulRRows(f, load, T)
	if sigma != 0 {
		mulRRows(f, ext, T)
	}
	copy(v2[0], v2base[0])
	lowest := math.Inf(1)
	nonzero := false
	for b := 1; b < nb; b++ {
		vb, base, lb := v2[b][:T], v2base[b][:T], load[b*T:(b+1)*T]
		if sigma == 0 {
			for t := range vb {
				v := base[t] - c*lb[t]
				vb[t] = v
				if v < lowest {
					lowest = v
				}
			}
			continue
		}
		mb, eb, ob := mu[b][:T], ext[b*T:(b+1)*T], out[b*T:(b+1)*T]
		for t := range vb {
			bt := base[t]
			v := bt - c*lb[t]
			vb[t] = v
			if v < lowest {
				lowest = v
			}
			m := max(0, mb[t]+sigma*(vmin2-(bt-c*eb[t])))
			mb[t] = m
			ob[t] = m // the multiplier rows, for the price
			nonzero = nonzero || m != 0
		}
	}
	if sigma == 0 {
		return lowest
	}
	// The price each bus's vehicles see next: w_b = (2/S) (R mu)_b. With
	// every multiplier zero it is zero, without a product.
	if !nonzero {
		for b := range price {
			clear(price[b])
		}
		return lowest
	}
	mulRRows(f, out, T)
	for b := 0; b < nb; b++ {
		pb, ob := price[b][:T], out[b*T:(b+1)*T]
		for t := range pb {
			pb[t] = c * ob[t]
		}
	}
	return lowest
}

// mulRRows is grid.Feeder.MulR applied in place to T slots at once: m
// holds one row of T values per bus and becomes R times it (row 0, the
// slack bus, is ignored on input and zero on output). The downstream sums
// run leaf-first and the voltage drops root-first as in MulR, so every
// slot's result is the same.
func mulRRows(f *grid.Feeder, m []float64, T int) {
	n := len(f.Buses)
	clear(m[:T])
	for i := n - 1; i > 0; i-- {
		p := f.Buses[i].Parent
		dst, src := m[p*T:(p+1)*T], m[i*T:(i+1)*T]
		for t := range dst {
			dst[t] += src[t]
		}
	}
	clear(m[:T])
	for i := 1; i < n; i++ {
		b := &f.Buses[i]
		z := b.R
		dst, up := m[i*T:(i+1)*T], m[b.Parent*T:(b.Parent+1)*T]
		for t := range dst {
			dst[t] = up[t] + z*dst[t]
		}
	}
}

func alloc2(n, m int) [][]float64 {
	flat := make([]float64, n*m)
	out := make([][]float64, n)
	for i := range out {
		out[i] = flat[i*m : (i+1)*m : (i+1)*m]
	}
	return out
}

// parallel runs fn(worker, i) for i in 0..n-1 on up to workers goroutines.
// Each index is handled once, and callers write only to state owned by
// that index (or to the worker's scratch space), so the outcome does not
// depend on scheduling.
func parallel(workers, n int, fn func(worker, i int)) {
	if workers <= 1 || n < 2 {
		for i := 0; i < n; i++ {
			fn(0, i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < min(workers, n); w++ {
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

// OperatorState is the part of an Operator's state that changes from
// iteration to iteration: what a restarted SO needs to go on where it
// stopped instead of starting the day again. Everything else follows
// from the OperatorConfig. It is taken between iterations.
type OperatorState struct {
	Iter         int
	Started      bool
	LastGapCheck int
	Gap          float64
	Converged    bool
	A, Prev      []float64
	Sums         [][]float64
	OldSums      [][]float64
	Mu, Price    [][][]float64
	V2           [][][]float64
	History      []Stats
}

// State returns a deep copy of the operator's changing state.
func (o *Operator) State() OperatorState {
	c1 := func(v []float64) []float64 { return append([]float64(nil), v...) }
	c2 := func(v [][]float64) [][]float64 {
		out := make([][]float64, len(v))
		for i := range v {
			out[i] = c1(v[i])
		}
		return out
	}
	c3 := func(v [][][]float64) [][][]float64 {
		out := make([][][]float64, len(v))
		for i := range v {
			out[i] = c2(v[i])
		}
		return out
	}
	return OperatorState{Iter: o.iter, Started: o.started, LastGapCheck: o.lastGapCheck, Gap: o.gap, Converged: o.converged,
		A: c1(o.a), Prev: c1(o.prev), Sums: c2(o.sums), OldSums: c2(o.oldSums), Mu: c3(o.mu), Price: c3(o.price), V2: c3(o.v2),
		History: append([]Stats(nil), o.history...)}
}

// Restore puts a state taken by State back, after checking that its shape
// fits the operator's configuration (a state file from another scenario
// is refused, not half applied).
func (o *Operator) Restore(s OperatorState) error {
	fit2 := func(what string, dst, src [][]float64) error {
		if len(dst) != len(src) {
			return fmt.Errorf("saved %s has %d rows, this configuration %d", what, len(src), len(dst))
		}
		for i := range dst {
			if len(dst[i]) != len(src[i]) {
				return fmt.Errorf("saved %s row %d has %d values, this configuration %d", what, i, len(src[i]), len(dst[i]))
			}
		}
		return nil
	}
	if len(s.A) != o.T || len(s.Prev) != o.T {
		return fmt.Errorf("saved aggregate has %d slots, this configuration %d", len(s.A), o.T)
	}
	if err := fit2("sums", o.sums, s.Sums); err != nil {
		return err
	}
	if err := fit2("previous sums", o.oldSums, s.OldSums); err != nil {
		return err
	}
	for _, m := range []struct {
		what     string
		dst, src [][][]float64
	}{{"multipliers", o.mu, s.Mu}, {"prices", o.price, s.Price}, {"voltages", o.v2, s.V2}} {
		if len(m.dst) != len(m.src) {
			return fmt.Errorf("saved %s cover %d feeders, this configuration %d", m.what, len(m.src), len(m.dst))
		}
		for fi := range m.dst {
			if err := fit2(m.what, m.dst[fi], m.src[fi]); err != nil {
				return err
			}
		}
	}
	o.iter, o.started, o.lastGapCheck, o.gap, o.converged = s.Iter, s.Started, s.LastGapCheck, s.Gap, s.Converged
	copy(o.a, s.A)
	copy(o.prev, s.Prev)
	for g := range o.sums {
		copy(o.sums[g], s.Sums[g])
		copy(o.oldSums[g], s.OldSums[g])
	}
	for fi := range o.mu {
		for b := range o.mu[fi] {
			copy(o.mu[fi][b], s.Mu[fi][b])
			copy(o.price[fi][b], s.Price[fi][b])
			copy(o.v2[fi][b], s.V2[fi][b])
		}
	}
	o.history = append([]Stats(nil), s.History...)
	return nil
}

// OperatorConfig splits a problem into what the system operator knows: the
// grid, the baselines, the voltage limit, which buses host how many
// vehicles and the most plugged in at once. busEVs[g] lists the indices of
// the EVs at bus g of cfg.Buses, in problem order; their local sets stay
// with the vehicles.
func (p *Problem) OperatorConfig(opt Options) (cfg OperatorConfig, busEVs [][]int) {
	order := make([]int, len(p.EVs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		ea, eb := &p.EVs[order[a]], &p.EVs[order[b]]
		if ea.Feeder != eb.Feeder {
			return ea.Feeder < eb.Feeder
		}
		return ea.Bus < eb.Bus
	})
	plugged := make([]int, p.Slots)
	cfg = OperatorConfig{Slots: p.Slots, DT: p.DT, VMin: p.VMin, Feeders: p.Feeders, Options: opt}
	for pos, i := range order {
		ev := &p.EVs[i]
		if pos == 0 || ev.Feeder != p.EVs[order[pos-1]].Feeder || ev.Bus != p.EVs[order[pos-1]].Bus {
			cfg.Buses = append(cfg.Buses, Bus{Feeder: ev.Feeder, Bus: ev.Bus})
			busEVs = append(busEVs, order[pos:pos])
		}
		g := len(cfg.Buses) - 1
		cfg.Buses[g].Vehicles++
		busEVs[g] = busEVs[g][:len(busEVs[g])+1]
		for t := ev.Arrive; t < ev.Depart; t++ {
			plugged[t]++
		}
	}
	for _, c := range plugged {
		cfg.MaxPlugged = max(cfg.MaxPlugged, c)
	}
	return cfg, busEVs
}
