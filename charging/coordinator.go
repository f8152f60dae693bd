package charging

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// The message protocol of coordinated charging between parties. The SO's
// side is a Coordinator (an Operator plus rounds, membership and
// idempotent report handling); each vehicle's side is Vehicle.Answer. Both
// are pure: the services move the messages (transport), the tests and the
// simulator may move them in memory. One round:
//
//	SO -> every bus:      Broadcast{Round r, Phase, Iter, Tau, A, w_b}
//	vehicle -> SO:        Report{Round r, Sender, schedule or bound}
//	SO, all reports in:   Advance (Start, Update, Certify), next round
//
// Phases follow one another as PhaseStart (the starting schedules), then
// PhaseStep rounds, a PhaseBound round whenever the stopping tests hold
// (the vehicles' bound terms certify the gap, docs/ARCHITECTURE.md C2's certificate
// without any local set reaching the SO), and PhaseDone at the end.

// Typed refusals of Coordinator.Handle. A service logs them with the
// subject and carries on.
var (
	// ErrStaleReport: a report for another round than the current one
	// (late, replayed, or from the future).
	ErrStaleReport = errors.New("report is not for the current round")
	// ErrUnknownSender: a report from a vehicle that has not joined the bus.
	ErrUnknownSender = errors.New("report from a vehicle that has not joined this bus")
	// ErrBadReport: a report whose content does not fit the round.
	ErrBadReport = errors.New("report does not fit the round")
	// ErrDropped: a report from a member the SO has dropped for silence.
	ErrDropped = errors.New("report from a vehicle dropped from the coordination")
)

// Coordinator is the system operator's protocol core: it runs an Operator
// over rounds of broadcasts and reports. It knows which vehicles joined
// each bus (by session pseudonym, never by identity) and accepts one report
// per vehicle and round; a repeated report is ignored, so delivery may be
// at-least-once. A bus's sum is formed in the order of its members, so the
// result does not depend on the order reports arrive in.
type Coordinator struct {
	op      *Operator
	members [][]string       // per bus, sorted
	index   []map[string]int // per bus: sender -> position in members
	round   int
	phase   Phase
	got     [][]bool      // per bus, per member: reported this round
	values  [][][]float64 // per bus, per member: reported schedule
	bounds  [][]float64   // per bus, per member: reported bound term
	dropped [][]bool      // per bus, per member: dropped; its last schedule is a fixed load
	kept    [][]int       // per bus, per member: the round of its last schedule counted (-1: none)
	missing int           // reports still due this round
	// A private aggregation mechanism hands in a bus's sum, not its
	// members' reports (SetBusSum): busSum[g] is it for the current round
	// (nil: not handed in), busBound[g] the bus's sum of bound terms.
	busSum   [][]float64
	busBound []float64
}

// NewCoordinator starts the SO's side of the protocol. members[g] lists
// the session pseudonyms of the vehicles at bus g of the operator's Buses;
// their count must match the bus's Vehicles.
func NewCoordinator(op *Operator, members [][]string) (*Coordinator, error) {
	buses := op.Buses()
	if len(members) != len(buses) {
		return nil, fmt.Errorf("%w: %d member lists for %d buses", ErrInvalidProblem, len(members), len(buses))
	}
	c := &Coordinator{op: op, phase: PhaseStart}
	for g, m := range members {
		if len(m) != buses[g].Vehicles {
			return nil, fmt.Errorf("%w: bus %d (feeder %d, bus %d) has %d members but %d vehicles", ErrInvalidProblem, g, buses[g].Feeder, buses[g].Bus, len(m), buses[g].Vehicles)
		}
		s := slices.Clone(m)
		slices.Sort(s)
		idx := make(map[string]int, len(s))
		for i, id := range s {
			if _, dup := idx[id]; dup || id == "" {
				return nil, fmt.Errorf("%w: bus %d lists member %q twice or empty", ErrInvalidProblem, g, id)
			}
			idx[id] = i
		}
		c.members = append(c.members, s)
		c.index = append(c.index, idx)
		c.got = append(c.got, make([]bool, len(s)))
		c.dropped = append(c.dropped, make([]bool, len(s)))
		kept := make([]int, len(s))
		for i := range kept {
			kept[i] = -1
		}
		c.kept = append(c.kept, kept)
		vals := make([][]float64, len(s))
		for i := range vals {
			vals[i] = make([]float64, op.T)
		}
		c.values = append(c.values, vals)
		c.bounds = append(c.bounds, make([]float64, len(s)))
	}
	c.resetRound()
	return c, nil
}

// Operator returns the operator the coordinator drives.
func (c *Coordinator) Operator() *Operator { return c.op }

// Round is the current round number.
func (c *Coordinator) Round() int { return c.round }

// Phase is what the current round asks of the vehicles.
func (c *Coordinator) Phase() Phase { return c.phase }

// Missing is the number of reports still due in the current round.
func (c *Coordinator) Missing() int { return c.missing }

// Members returns the sorted session pseudonyms of bus g's vehicles.
func (c *Coordinator) Members(g int) []string { return c.members[g] }

// Broadcast returns the current round's broadcast to bus g.
func (c *Coordinator) Broadcast(g int) Broadcast {
	b := c.op.Buses()[g]
	m := Broadcast{Round: c.round, Iter: c.iter(), Phase: c.phase, Feeder: b.Feeder, Bus: b.Bus, Tau: c.op.Tau()}
	if c.phase == PhaseStep || c.phase == PhaseBound {
		m.Aggregate = c.op.Aggregate()
		m.Price = c.op.Price(g)
	}
	return m
}

// iter is the iteration the current round's reports belong to.
func (c *Coordinator) iter() int {
	switch c.phase {
	case PhaseStart:
		return -1
	case PhaseStep:
		return c.op.Iteration()
	}
	return c.op.Iteration() - 1
}

// Handle takes one vehicle's report. It returns nil for a report it
// accepted or had already accepted (a duplicate changes nothing), and a
// typed error for one it refused. bus is the index of the bus whose
// subject the report came on.
func (c *Coordinator) Handle(bus int, r *Report) error {
	if bus < 0 || bus >= len(c.members) {
		return fmt.Errorf("%w: bus %d does not exist", ErrBadReport, bus)
	}
	b := c.op.Buses()[bus]
	if r.Feeder != b.Feeder || r.Bus != b.Bus {
		return fmt.Errorf("%w: report names feeder %d bus %d on the subject of feeder %d bus %d", ErrBadReport, r.Feeder, r.Bus, b.Feeder, b.Bus)
	}
	k, ok := c.index[bus][r.Sender]
	if !ok {
		return fmt.Errorf("%w: %q at feeder %d bus %d", ErrUnknownSender, r.Sender, b.Feeder, b.Bus)
	}
	if c.dropped[bus][k] {
		return fmt.Errorf("%w: %q at feeder %d bus %d", ErrDropped, r.Sender, b.Feeder, b.Bus)
	}
	if r.Round != c.round || c.phase == PhaseDone {
		return fmt.Errorf("%w: report of round %d from %q, current round %d (%s)", ErrStaleReport, r.Round, r.Sender, c.round, c.phase)
	}
	if r.Phase != c.phase || r.Iter != c.iter() {
		return fmt.Errorf("%w: %q answered phase %s of iteration %d in round %d, which is phase %s of iteration %d", ErrBadReport, r.Sender, r.Phase, r.Iter, c.round, c.phase, c.iter())
	}
	if c.got[bus][k] {
		return nil // at-least-once delivery: the first copy counted
	}
	switch c.phase {
	case PhaseStart, PhaseStep:
		if len(r.Values) != c.op.T {
			return fmt.Errorf("%w: %q reported %d slots, the horizon has %d", ErrBadReport, r.Sender, len(r.Values), c.op.T)
		}
		copy(c.values[bus][k], r.Values)
		c.kept[bus][k] = r.Round
	case PhaseBound:
		if math.IsNaN(r.Bound) || math.IsInf(r.Bound, 0) {
			return fmt.Errorf("%w: %q reported bound %v", ErrBadReport, r.Sender, r.Bound)
		}
		c.bounds[bus][k] = r.Bound
	}
	c.got[bus][k] = true
	c.missing--
	return nil
}

// Silent lists, per bus, the members whose report of the current round
// is still missing.
func (c *Coordinator) Silent() map[int][]string {
	out := map[int][]string{}
	for g := range c.got {
		for k, ok := range c.got[g] {
			if !ok && !c.dropped[g][k] {
				out[g] = append(out[g], c.members[g][k])
			}
		}
	}
	return out
}

// Drop removes a member that has stopped answering (its process died, its
// link is gone) from the coordination, so that the others can finish the
// day. What it last reported stays in its bus's sum as a fixed load: a
// charge point that loses its vehicle's controller keeps executing the
// last schedule it was given, and the grid carries it. From then on the
// problem the coordination solves is the survivors' with that load added,
// and its certificate (the dropped vehicle's bound term becomes its fixed
// schedule's cost) certifies exactly that problem. A member that never
// reported counts as a zero load.
func (c *Coordinator) Drop(bus int, sender string) error {
	if bus < 0 || bus >= len(c.members) {
		return fmt.Errorf("bus %d does not exist", bus)
	}
	k, ok := c.index[bus][sender]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownSender, sender)
	}
	if c.dropped[bus][k] {
		return nil
	}
	c.dropped[bus][k] = true
	if !c.got[bus][k] && c.phase != PhaseDone {
		c.missing--
	}
	return nil
}

// DropNotice is the message that tells a dropped member which of its
// reports its bus's sum keeps.
func (c *Coordinator) DropNotice(bus int, sender string) Dropped {
	b := c.op.Buses()[bus]
	d := Dropped{Feeder: b.Feeder, Bus: b.Bus, Sender: sender, Kept: -1}
	if k, ok := c.index[bus][sender]; ok {
		d.Kept = c.kept[bus][k]
	}
	return d
}

// Dropped lists the dropped members, per bus.
func (c *Coordinator) Dropped() map[int][]string {
	out := map[int][]string{}
	for g := range c.dropped {
		for k, d := range c.dropped[g] {
			if d {
				out[g] = append(out[g], c.members[g][k])
			}
		}
	}
	return out
}

// Ready reports whether every report of the round is in.
func (c *Coordinator) Ready() bool { return c.missing == 0 && c.phase != PhaseDone }

// Advance consumes a complete round and moves to the next: the starting
// sums start the operator, a step round updates it (and asks for bounds
// when the stopping tests hold), a bound round certifies the gap. It
// returns the iteration's statistics when an iteration completed.
func (c *Coordinator) Advance() (Stats, bool, error) {
	if !c.Ready() {
		return Stats{}, false, fmt.Errorf("round %d (%s) still waits for %d reports", c.round, c.phase, c.missing)
	}
	var st Stats
	completed := false
	switch c.phase {
	case PhaseStart:
		c.sumInto(c.op.Sums())
		c.op.Start()
		c.phase = PhaseStep
	case PhaseStep:
		c.sumInto(c.op.Next())
		var certify bool
		st, certify = c.op.Update()
		completed = true
		if certify {
			c.phase = PhaseBound
		}
	case PhaseBound:
		q := c.op.BoundBase()
		a := c.op.Aggregate()
		for g := range c.bounds {
			price := c.op.Price(g)
			if c.busSum != nil && c.busSum[g] != nil {
				q += c.busBound[g] // the members' terms, summed by the mechanism
			}
			for k, v := range c.bounds[g] {
				if c.busSum != nil && c.busSum[g] != nil && !c.dropped[g][k] {
					continue
				}
				if c.dropped[g][k] {
					// A dropped vehicle's set is its frozen schedule
					// alone: its term is that schedule's cost.
					v = 0
					for t, x := range c.values[g][k] {
						v += (a[t] + price[t]) * x
					}
				}
				q += v
			}
		}
		st = c.op.Certify(q)
		completed = true
		c.phase = PhaseStep
	}
	if c.phase != PhaseBound && c.op.Done() {
		c.phase = PhaseDone
	}
	c.round++
	c.resetRound()
	return st, completed, nil
}

// SetBusSum takes the current round's sum over bus g's members from a
// private aggregation mechanism (masking over the network), in place of
// their reports: values, kW per slot, in a start or step round, or bound,
// the members' bound terms summed, in a bound round. The sum must cover
// every member not dropped; the round then counts all of them as
// reported. A bus's sum can be set once per round.
func (c *Coordinator) SetBusSum(bus, round int, values []float64, bound float64) error {
	if bus < 0 || bus >= len(c.members) {
		return fmt.Errorf("%w: bus %d does not exist", ErrBadReport, bus)
	}
	if round != c.round || c.phase == PhaseDone {
		return fmt.Errorf("%w: bus sum of round %d, current round %d (%s)", ErrStaleReport, round, c.round, c.phase)
	}
	if c.busSum == nil {
		c.busSum, c.busBound = make([][]float64, len(c.members)), make([]float64, len(c.members))
	}
	if c.busSum[bus] != nil {
		return fmt.Errorf("%w: bus %d's sum of round %d came twice", ErrBadReport, bus, round)
	}
	switch c.phase {
	case PhaseStart, PhaseStep:
		if len(values) != c.op.T {
			return fmt.Errorf("%w: bus sum of %d slots, the horizon has %d", ErrBadReport, len(values), c.op.T)
		}
		for _, v := range values {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("%w: bus sum holds %v", ErrBadReport, v)
			}
		}
		c.busSum[bus] = append(make([]float64, 0, c.op.T), values...)
	case PhaseBound:
		if math.IsNaN(bound) || math.IsInf(bound, 0) {
			return fmt.Errorf("%w: bus bound %v", ErrBadReport, bound)
		}
		c.busSum[bus], c.busBound[bus] = []float64{}, bound
	}
	for k, got := range c.got[bus] {
		if !got && !c.dropped[bus][k] {
			c.got[bus][k] = true
			c.missing--
		}
	}
	return nil
}

// sumInto forms each bus's sum in member order: the same bits whatever
// order the reports arrived in. A bus whose sum was handed in
// (SetBusSum) takes it, with its dropped members' fixed loads added.
func (c *Coordinator) sumInto(sums [][]float64) {
	for g := range sums {
		if c.busSum != nil && c.busSum[g] != nil {
			copy(sums[g], c.busSum[g])
			for k, row := range c.values[g] {
				if c.dropped[g][k] {
					for t, v := range row {
						sums[g][t] += v
					}
				}
			}
			continue
		}
		clear(sums[g])
		for _, row := range c.values[g] {
			for t, v := range row {
				sums[g][t] += v
			}
		}
	}
}

func (c *Coordinator) resetRound() {
	c.missing = 0
	if c.busSum != nil {
		clear(c.busSum)
	}
	if c.phase == PhaseDone {
		return
	}
	for g := range c.got {
		clear(c.got[g])
		for k := range c.got[g] {
			if !c.dropped[g][k] {
				c.missing++
			}
		}
	}
}

// Answer is the vehicle's protocol step: its report for a broadcast of its
// bus, or false when the broadcast asks for none (PhaseDone) or is older
// than one it already answered. A broadcast it has just answered gets the
// same report again without a second step, so the SO may re-send a round
// after a restart or a lost message. scratch needs one float and one index
// per slot.
func (v *Vehicle) Answer(b *Broadcast, sender string, scratch []float64, idx []int) (Report, bool) {
	if b.Phase == PhaseDone {
		v.done = true
		return Report{}, false
	}
	if v.answered && b.Round < v.last.Round {
		return Report{}, false
	}
	if v.answered && b.Round == v.last.Round {
		return v.last, true
	}
	T := len(v.x)
	if (b.Phase == PhaseStep || b.Phase == PhaseBound) && (len(b.Aggregate) != T || len(b.Price) != T) {
		return Report{}, false
	}
	r := Report{Round: b.Round, Iter: b.Iter, Phase: b.Phase, Feeder: v.ev.Feeder, Bus: v.ev.Bus, Sender: sender}
	switch b.Phase {
	case PhaseStart:
		v.xRound = b.Round
		r.Values = v.x
	case PhaseStep:
		// The schedule before the step is kept: if the SO never got this
		// report and drops the vehicle, the sum holds the previous one.
		if v.prev == nil {
			v.prev = make([]float64, T)
		}
		copy(v.prev, v.x)
		v.prevRound = v.xRound
		v.Step(b.Tau, b.Aggregate, b.Price, scratch)
		v.xRound = b.Round
		r.Values = v.x
	case PhaseBound:
		r.Bound = v.Bound(b.Aggregate, b.Price, idx)
	default:
		return Report{}, false
	}
	v.last, v.answered = r, true
	return r, true
}

// Freeze ends the vehicle's coordination on the SO's drop notice: its
// schedule becomes the one it reported in round kept, which is what its
// bus's sum holds. It fails if the vehicle holds no such schedule (kept
// older than the one step it keeps).
func (v *Vehicle) Freeze(kept int) error {
	switch {
	case kept == v.xRound && v.answered:
	case v.prev != nil && kept == v.prevRound:
		copy(v.x, v.prev)
		v.xRound = kept
	case kept < 0:
		// The SO never counted a schedule of ours: we draw nothing.
		clear(v.x)
	default:
		return fmt.Errorf("dropped with the schedule of round %d, but this vehicle holds rounds %d and %d", kept, v.xRound, v.prevRound)
	}
	v.done = true
	return nil
}

// Done reports whether the vehicle has seen the end of the coordination.
func (v *Vehicle) Done() bool { return v.done }

// CoordinatorState is what a restarted SO needs besides the operator's
// state: the round and its phase. It is taken between rounds (after
// Advance), when no report of the new round has been counted yet; the
// vehicles answer the re-sent round again, idempotently.
type CoordinatorState struct {
	Round    int
	Phase    Phase
	Operator OperatorState
	// Dropped members and the schedules that stay in their buses' sums.
	Dropped []DroppedMember
}

// DroppedMember is a member dropped from the coordination and the fixed
// load it left.
type DroppedMember struct {
	Bus      int
	Sender   string
	Schedule []float64
	Kept     int // the round the schedule was reported in
}

// State returns the coordinator's state between rounds.
func (c *Coordinator) State() CoordinatorState {
	st := CoordinatorState{Round: c.round, Phase: c.phase, Operator: c.op.State()}
	for g := range c.dropped {
		for k, d := range c.dropped[g] {
			if d {
				st.Dropped = append(st.Dropped, DroppedMember{Bus: g, Sender: c.members[g][k], Schedule: append([]float64(nil), c.values[g][k]...), Kept: c.kept[g][k]})
			}
		}
	}
	return st
}

// Restore resumes from a saved state: the round starts again with no
// report counted.
func (c *Coordinator) Restore(s CoordinatorState) error {
	if s.Phase < PhaseStart || s.Phase > PhaseDone {
		return fmt.Errorf("saved coordinator state has phase %d", s.Phase)
	}
	for _, d := range s.Dropped {
		if d.Bus < 0 || d.Bus >= len(c.members) || len(d.Schedule) != c.op.T {
			return fmt.Errorf("saved coordinator state drops a member of bus %d with %d slots", d.Bus, len(d.Schedule))
		}
		if _, ok := c.index[d.Bus][d.Sender]; !ok {
			return fmt.Errorf("saved coordinator state drops %q, not a member of bus %d", d.Sender, d.Bus)
		}
	}
	if err := c.op.Restore(s.Operator); err != nil {
		return err
	}
	for _, d := range s.Dropped {
		k := c.index[d.Bus][d.Sender]
		c.dropped[d.Bus][k] = true
		copy(c.values[d.Bus][k], d.Schedule)
		c.kept[d.Bus][k] = d.Kept
	}
	c.round, c.phase = s.Round, s.Phase
	c.resetRound()
	return nil
}
