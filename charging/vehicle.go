package charging

import (
	"math"
	"sort"
)

// Vehicle is the vehicle's side of coordinated charging: a deterministic
// state machine that holds one EV's private local set X_i and its current
// schedule, and answers each broadcast of the system operator with its next
// schedule (DESIGN.md C2, seed 001 eq. 10, the x-update). It sees nothing
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
func (v *Vehicle) Step(tau float64, aggregate, price, scratch []float64) {
	a, d := v.ev.Arrive, v.ev.Depart
	win := scratch[a:d]
	for t := a; t < d; t++ {
		win[t-a] = v.x[t] - tau*(aggregate[t]+price[t])
	}
	v.nu = Project(win, v.ev.PMax, v.need, v.nu, v.x[a:d])
}

// Bound returns the vehicle's term of the Lagrangian lower bound that
// certifies optimality (LowerBound): min over X_i of <lambda + w_b, x>,
// the cost of filling its cheapest plugged-in slots at full power. A
// vehicle computes it from the broadcast alone, so the SO can certify a
// solution without seeing any local set. idx is scratch with room for one
// index per slot.
func (v *Vehicle) Bound(lambda, price []float64, idx []int) float64 {
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
