package charging

import (
	"math"
	"sort"
)

// Vehicle is the vehicle's side of coordinated charging: a deterministic
// state machine that holds one EV's private local set X_i and its current
// schedule, and answers each broadcast of the system operator with its next
// schedule (docs/ARCHITECTURE.md C2, seed 001 eq. 10, the x-update). It sees nothing
// but its own set and what the SO broadcasts to its bus: the aggregate load
// A(t), the bus's voltage price w_b(t) and the step size tau.
//
// The schedule is what the vehicle then reports through the private
// aggregation mechanism of its bus (an Aggregator in one process, the
// mechanism's messages between processes); the Vehicle itself does no I/O.
type Vehicle struct {
	ev   *EV
	need float64   // grid energy to draw, kW-slots
	nu   float64   // last projection shift, the warm start of the next
	x    []float64 // schedule, kW, one value per slot of the horizon

	last     Report // the last report Answer produced, re-sent for a repeated broadcast
	answered bool
	done     bool
	// For Freeze: the round whose schedule x is, and the schedule before
	// the last step with its round.
	xRound, prevRound int
	prev              []float64

	bat *batteryState // nil for a charging-only vehicle
}

// batteryState is a battery vehicle's part of the state: its tube and its
// charge and discharge over the plug-in window (the net schedule x is
// c - d).
type batteryState struct {
	tb     *tube
	dt     float64
	c, d   []float64 // window slots
	yc, yd []float64 // scratch for the gradient step
	lam    float64   // last projection's first multiplier, the warm start
}

// NewVehicle starts a vehicle at the flat schedule that meets its demand
// over its plug-in window. x is the storage for the schedule (len slots,
// all zero); nil allocates it. The in-process solver passes rows of one
// block so that a bus's schedules lie back to back in memory, which is what
// an Aggregator reads. ev must be valid (Problem.Validate) and is not
// copied: the vehicle reads it on every step.
func NewVehicle(ev *EV, slots int, dt float64, x []float64) Vehicle {
	if x == nil {
		x = make([]float64, slots)
	}
	if ev.Battery() {
		return newBatteryVehicle(ev, dt, x[:slots:slots])
	}
	v := Vehicle{ev: ev, need: ev.Need(dt), nu: math.NaN(), x: x[:slots:slots]}
	w := ev.Depart - ev.Arrive
	for t := ev.Arrive; t < ev.Depart; t++ {
		x[t] = v.need / float64(w)
	}
	return v
}

// Schedule returns the vehicle's current schedule, kW per slot. It aliases
// the vehicle's state: copy it to keep it past the next Step.
func (v *Vehicle) Schedule() []float64 { return v.x }

// EV returns the vehicle's local set.
func (v *Vehicle) EV() *EV { return v.ev }

// Step is the vehicle's projected-gradient update on the SO's broadcast:
// x <- Proj_{X_i}(x - tau (A + w_b)). aggregate and price have one value
// per slot; scratch needs at least as many. The projection is exact
// (Project), warm-started from the previous step's shift.
//
// A battery vehicle steps in its own coordinates, charge c and discharge d
// with x = c - d, at half the step: the map (c, d) -> x has squared norm 2,
// so tau/2 keeps the SO's step condition (tau times the most vehicles
// plugged in at once) and its dual step unchanged.
func (v *Vehicle) Step(tau float64, aggregate, price, scratch []float64) {
	if v.bat != nil {
		v.stepBattery(tau, aggregate, price)
		return
	}
	a, d := v.ev.Arrive, v.ev.Depart
	win := scratch[a:d]
	n, u, e := d-a, v.ev.PMax, v.need
	if n == 0 || e >= float64(n)*u || e <= 0 || math.IsNaN(v.nu) || math.IsInf(v.nu, 0) {
		for t := a; t < d; t++ {
			win[t-a] = v.x[t] - tau*(aggregate[t]+price[t])
		}
		v.nu = Project(win, u, e, v.nu, v.x[a:d])
		return
	}
	v.nu = stepProject(v.x[a:d], aggregate[a:d], price[a:d], tau, u, e, v.nu, win)
}

// Bound returns the vehicle's term of the Lagrangian lower bound that
// certifies optimality (LowerBound): min over X_i of <lambda + w_b, x>,
// the cost of filling its cheapest plugged-in slots at full power. A
// vehicle computes it from the broadcast alone, so the SO can certify a
// solution without seeing any local set. idx is scratch with room for one
// index per slot.
//
// For a battery vehicle the minimum is the linear programme over its SOC
// tube (batteryBound), less the wear cost of its current schedule: the SO
// compares its bound with 1/2 ||A||^2 alone, so the vehicles' wear, which
// is part of the objective they minimise, is moved to the bound's side.
func (v *Vehicle) Bound(lambda, price []float64, idx []int) float64 {
	if v.bat != nil {
		return v.boundBattery(lambda, price)
	}
	win := idx[:0]
	for t := v.ev.Arrive; t < v.ev.Depart; t++ {
		win = append(win, t)
	}
	sort.Slice(win, func(a, b int) bool { return lambda[win[a]]+price[win[a]] < lambda[win[b]]+price[win[b]] })
	need, q := v.need, 0.0
	for _, t := range win {
		if need <= 0 {
			break
		}
		take := math.Min(need, v.ev.PMax)
		q += take * (lambda[t] + price[t])
		need -= take
	}
	return q
}

func newBatteryVehicle(ev *EV, dt float64, x []float64) Vehicle {
	n := ev.Depart - ev.Arrive
	b := &batteryState{tb: newTube(ev, dt), dt: dt, lam: math.NaN(),
		c: make([]float64, n), d: make([]float64, n), yc: make([]float64, n), yd: make([]float64, n)}
	// Start from the projection of the flat charge that meets the
	// departure need: a schedule in the set, whatever the bounds.
	flat := max(ev.SOCDepart-ev.SOCArrive, 0) / (ev.chargeGain(dt) * float64(n))
	for k := range b.yc {
		b.yc[k] = flat
	}
	b.lam = b.tb.project(b.yc, b.yd, b.c, b.d, math.NaN())
	v := Vehicle{ev: ev, nu: math.NaN(), x: x, bat: b}
	v.writeNet()
	return v
}

func (v *Vehicle) writeNet() {
	b := v.bat
	for k := range b.c {
		v.x[v.ev.Arrive+k] = b.c[k] - b.d[k]
	}
}

func (v *Vehicle) stepBattery(tau float64, aggregate, price []float64) {
	b, a := v.bat, v.ev.Arrive
	h, kappa := tau/2, v.ev.Degradation
	for k := range b.c {
		g := aggregate[a+k] + price[a+k]
		b.yc[k] = b.c[k] - h*(g+kappa)
		b.yd[k] = b.d[k] - h*(kappa-g)
	}
	b.lam = b.tb.project(b.yc, b.yd, b.c, b.d, b.lam)
	v.writeNet()
}

func (v *Vehicle) boundBattery(lambda, price []float64) float64 {
	b := v.bat
	g := make([]float64, len(lambda))
	for t := range g {
		g[t] = lambda[t] + price[t]
	}
	q, _ := batteryBound(v.ev, b.dt, g)
	return q - v.Wear()
}

// Wear is the vehicle's current degradation cost, Degradation times its
// throughput sum_t (c + d) (0 for a charging-only vehicle).
func (v *Vehicle) Wear() float64 {
	if v.bat == nil || v.ev.Degradation == 0 {
		return 0
	}
	s := 0.0
	for k := range v.bat.c {
		s += v.bat.c[k] + v.bat.d[k]
	}
	return v.ev.Degradation * s
}

// SOC returns a battery vehicle's state of charge after every slot of the
// horizon, kWh (SOCArrive before arrival, constant after departure), from
// its charge and discharge; nil for a charging-only vehicle.
func (v *Vehicle) SOC() []float64 {
	if v.bat == nil {
		return nil
	}
	out := make([]float64, len(v.x))
	s := v.ev.SOCArrive
	for t := range out {
		if k := t - v.ev.Arrive; k >= 0 && k < len(v.bat.c) {
			s += v.bat.tb.a*v.bat.c[k] - v.bat.tb.b*v.bat.d[k]
		}
		out[t] = s
	}
	return out
}

// Simultaneous is the largest min(c, d) of any slot, kW: how far the
// schedule is from one that a real battery can run. 0 whenever the
// relaxation is exact (see battery.go).
func (v *Vehicle) Simultaneous() float64 {
	if v.bat == nil {
		return 0
	}
	m := 0.0
	for k := range v.bat.c {
		m = max(m, min(v.bat.c[k], v.bat.d[k]))
	}
	return m
}
