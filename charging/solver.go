package charging

import (
	"fmt"
	"math"
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
	// SOC is each battery vehicle's state of charge after every slot, kWh
	// ([ev][slot], nil rows for charging-only vehicles; nil if the problem
	// has no battery vehicle).
	SOC [][]float64
	// Wear is the vehicles' total degradation cost (EV.Degradation), in
	// the objective's units; it is not part of Objective.
	Wear float64
	// Simultaneous is the largest power any battery vehicle charges and
	// discharges in the same slot, kW: 0 when the convex relaxation is
	// exact (battery.go).
	Simultaneous float64
}

// Solve runs the decentralized projected-gradient primal-dual method of
// docs/ARCHITECTURE.md C2 (seed 001 eq. 10) with a Condat-Vu extrapolation on the
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
//
// Solve is the in-process driver of the two cores that run as separate
// parties in a deployment: one Vehicle per EV (steps 2 and its report) and
// the Operator (steps 1 and 4). The Aggregator stands for the network and
// the privacy mechanism between them. The certificate uses LowerBound, which
// shares no code with either core.
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
	x     []float64 // [position][slot]: the vehicles' schedules, back to back
	veh   []Vehicle // per position; schedules are rows of x

	groups []Group
	gstart []int // first position of each group

	op      *Operator
	workers int
	scratch [][]float64 // per worker, T values
}

func newSolver(p *Problem, opt Options) (*solver, error) {
	opt, err := opt.withDefaults()
	if err != nil {
		return nil, err
	}
	T := p.Slots
	s := &solver{p: p, opt: opt, T: T, workers: opt.Workers}
	cfg, busEVs := p.OperatorConfig(opt)
	s.x = make([]float64, len(p.EVs)*T)
	s.veh = make([]Vehicle, len(p.EVs))
	for g, evs := range busEVs {
		s.gstart = append(s.gstart, len(s.order))
		s.groups = append(s.groups, Group{Feeder: cfg.Buses[g].Feeder, Bus: cfg.Buses[g].Bus, EVs: evs})
		for _, i := range evs {
			pos := len(s.order)
			s.order = append(s.order, i)
			s.veh[pos] = NewVehicle(&p.EVs[i], T, p.DT, s.x[pos*T:(pos+1)*T])
		}
	}
	s.op, err = NewOperator(cfg)
	if err != nil {
		return nil, err
	}
	s.scratch = make([][]float64, s.workers)
	for w := range s.scratch {
		s.scratch[w] = make([]float64, T)
	}
	return s, nil
}

func (s *solver) run() (*Solution, error) {
	p, T, op := s.p, s.T, s.op
	// Initial aggregate from the starting schedules.
	if err := s.aggregate(-1, op.Sums()); err != nil {
		return nil, err
	}
	op.Start()
	sol := &Solution{Gap: math.NaN()}
	for !op.Done() {
		k := op.Iteration()
		if err := s.aggregate(k, op.Next()); err != nil {
			return nil, err
		}
		st, certify := op.Update()
		if certify {
			st = op.Certify(LowerBound(p, op.Aggregate(), op.Mu()) - s.wear())
		}
		if s.opt.Progress != nil {
			s.opt.Progress(st)
		}
	}
	sol.Iterations = op.Iteration()
	sol.Converged = op.Converged()
	sol.Gap = op.Gap()
	sol.History = op.History()
	sol.Objective = Objective(op.Aggregate())
	sol.Aggregate = append([]float64(nil), op.Aggregate()...)
	sol.Wear = s.wear()
	for pos := range s.veh {
		v := &s.veh[pos]
		if soc := v.SOC(); soc != nil {
			if sol.SOC == nil {
				sol.SOC = make([][]float64, len(p.EVs))
			}
			sol.SOC[s.order[pos]] = soc
			sol.Simultaneous = max(sol.Simultaneous, v.Simultaneous())
		}
	}
	// Put the schedules in the problem's EV order in place (following the
	// permutation's cycles with one spare row), so that a million-EV
	// solution does not need a second copy of every schedule.
	s.permuteToEVOrder()
	sol.Schedules = make([][]float64, len(p.EVs))
	for i := range sol.Schedules {
		sol.Schedules[i] = s.x[i*T : (i+1)*T : (i+1)*T]
	}
	sol.Mu = op.Mu()
	// Squared voltages become voltages in place: the solver is done with them.
	v2 := op.VoltageSquared()
	for fi := range v2 {
		for b := range v2[fi] {
			for t, v := range v2[fi][b] {
				v2[fi][b][t] = math.Sqrt(max(v, 0))
			}
		}
	}
	sol.Voltage = v2
	return sol, nil
}

// aggregate runs every vehicle's step on the operator's broadcast (skipped
// when iter < 0, for the starting schedules) and the per-bus aggregation
// into sums, spread over the workers by group. Each group is handled by
// exactly one goroutine in a fixed order, so the result does not depend on
// scheduling.
func (s *solver) aggregate(iter int, sums [][]float64) error {
	ng := len(s.groups)
	errs := make([]error, ng)
	tau, a := s.op.Tau(), s.op.Aggregate()
	_, exact := s.opt.Aggregator.(Exact)
	work := func(w, g int) {
		grp := s.groups[g]
		first := s.gstart[g]
		if iter >= 0 {
			price := s.op.Price(g)
			y := s.scratch[w]
			if exact {
				// The Exact sum taken as each schedule is written, while
				// it is still in cache, instead of a second pass over the
				// bus's schedules: the same additions in the same order
				// (vehicle by vehicle), over the plug-in window only,
				// outside which a schedule is +0 and adds nothing.
				sum := sums[g][:s.T]
				clear(sum)
				for k := range grp.EVs {
					v := &s.veh[first+k]
					v.Step(tau, a, price, y)
					ev := v.ev
					row := v.x[ev.Arrive:ev.Depart]
					acc := sum[ev.Arrive:ev.Depart]
					for t, x := range row {
						acc[t] += x
					}
				}
				return
			}
			for k := range grp.EVs {
				s.veh[first+k].Step(tau, a, price, y)
			}
		}
		x := s.x[first*s.T : (first+len(grp.EVs))*s.T]
		errs[g] = s.opt.Aggregator.Aggregate(iter, grp, x, s.T, sums[g])
	}
	parallel(s.workers, ng, work)
	for g, err := range errs {
		if err != nil {
			grp := s.groups[g]
			return fmt.Errorf("aggregating bus %q of feeder %q in iteration %d: %w", s.p.Feeders[grp.Feeder].Buses[grp.Bus].Name, s.p.Feeders[grp.Feeder].Name, iter, err)
		}
	}
	return nil
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

// wear is the vehicles' total degradation cost, summed in solver order.
func (s *solver) wear() float64 {
	w := 0.0
	for pos := range s.veh {
		w += s.veh[pos].Wear()
	}
	return w
}
