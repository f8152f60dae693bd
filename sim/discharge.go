package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/gridveil/gridveil/auth"
	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/market"
	"github.com/gridveil/gridveil/runfile"
	"github.com/gridveil/gridveil/scenario"
)

// Discharge on request (docs/ARCHITECTURE.md "V2G discharging": C6 meets
// C2). Each feeder has a CA of its own (a distribution area): auth's CA
// tells every linked LAG of each new ring member at enrolment, so one CA
// for a region would send vehicles x LAGs messages (4 x 10^8 at 10^5
// vehicles); per feeder the properties at each LAG are the same. Before the coordination the CA asks every LAG's storage and supply
// vehicles to discharge in a window; each vehicle answers Agree or Decline
// sealed to the CA and signed anonymously (package auth's real cores,
// driven in process by authDay). A vehicle learns from the CA's sealed
// acknowledgement whether its agreement holds; only then does it keep its
// discharging set (PDis) in the coordination that follows. A vehicle that
// declined keeps its battery, floor and departure need with PDis 0: it
// charges only. The LAG learns only the CA's aggregates (over at least
// aggregateMin answers) and the SO only bus sums, as in every coordination.
//
// After the coordination each vehicle that agreed reports its metered
// export, sealed to the CA, when it stops discharging; the CA bills it and
// the settlement (runfile.Discharge) pays for the energy: what went to load
// vehicles at the same LAG through the V2V auction (v2v.go) is paid by
// them, the rest by the grid company at the posted price.

// aggregateMin is the CA's k-anonymity threshold for the aggregates it
// releases to LAGs (auth's default).
const aggregateMin = 3

// dayClock is the simulated clock of the day's authentication: slot 0
// starts here. Only differences matter (windows, permits).
var dayClock = time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)

// dischargeStep is the discharge requests' state between the request,
// before the coordination, and the settlement after it.
type dischargeStep struct {
	nets    []*authDay          // per feeder: one CA each (see request)
	netOf   map[string]*authDay // LAG -> its feeder's network
	seed    uint64
	mode    auth.Mode
	doc     *runfile.Discharge
	spw     int             // slots per settlement window
	sess    map[int]*authBV // EV index -> its session (bidirectional vehicles; with V2V also the first feeder's others)
	lagOf   map[int]string  // EV index -> its LAG
	agreed  map[int]bool    // bidirectional EV index -> the CA confirmed its agreement
	reqs    map[string]*auth.DischargeRequest
	request map[string]*runfile.DischargeRequest
}

// lagID names the LAG of a station: one per feeder and bus.
func lagID(p *charging.Problem, ev *charging.EV) string {
	return fmt.Sprintf("lag-%d-%s", ev.Feeder, p.Feeders[ev.Feeder].Buses[ev.Bus].Name)
}

// willingness draws each bidirectional vehicle's owner's decision from the
// seed, on a stream of its own, in vehicle order: the same seed gives the
// same answers, and raising the share only adds agreeing vehicles.
func willingness(p *charging.Problem, seed uint64, share float64) map[int]bool {
	rng := rand.New(rand.NewPCG(seed, 0x77696c6c)) // "will"
	will := map[int]bool{}
	for i, ev := range p.EVs {
		if ev.PDis > 0 {
			will[i] = rng.Float64() < share
		}
	}
	return will
}

// request runs the day's discharge requests on p and returns the problem
// the coordination solves (every vehicle that did not agree with PDis 0)
// and the step's state for the settlement; nil and p itself when no
// vehicle may discharge (no request is sent then, and no discharge.json
// is written). With distributed the requests are in the distributed mode
// and the first feeder's other vehicles join their LAGs as load vehicles,
// the V2V auction's buyers.
func (f *V2G) request(p *charging.Problem, meta *scenario.Meta, distributed bool) (*charging.Problem, *dischargeStep, error) {
	if !(f.Willing >= 0 && f.Willing <= 1) {
		return nil, nil, fmt.Errorf("--v2g-willing %v: give the share of bidirectional vehicles whose owners agree to discharge, in [0, 1]", f.Willing)
	}
	if f.Price < 0 || f.Price > market.MaxPrice {
		return nil, nil, fmt.Errorf("--v2g-price %d: give what the grid company pays per kWh discharged, in milli-currency, in [0, %d]", f.Price, market.MaxPrice)
	}
	will := willingness(p, meta.Seed, f.Willing)
	if len(will) == 0 || !f.Request {
		return p, nil, nil
	}
	st := &dischargeStep{nets: make([]*authDay, len(p.Feeders)), netOf: map[string]*authDay{}, seed: meta.Seed, mode: auth.Centralized, spw: max(1, int(math.Round(0.5/p.DT))),
		sess: map[int]*authBV{}, lagOf: map[int]string{}, agreed: map[int]bool{},
		reqs: map[string]*auth.DischargeRequest{}, request: map[string]*runfile.DischargeRequest{}}
	role := auth.RoleStorage
	if distributed {
		st.mode, role = auth.Distributed, auth.RoleSupply
	}
	st.doc = &runfile.Discharge{Schema: "gridveil/discharge/v1", Scenario: meta.Scenario, Seed: meta.Seed, Mode: st.mode.String(),
		Willing: f.Willing, AggregateMin: aggregateMin, WindowSlots: st.spw, Price: f.Price, Shortfall: shortfall}
	// LAGs in vehicle order, so that the file lists them in a fixed order.
	var order []string
	power := map[string]uint32{}
	for i := range p.EVs {
		ev := &p.EVs[i]
		if ev.PDis <= 0 && !(distributed && ev.Feeder == 0) {
			continue
		}
		id := lagID(p, ev)
		st.lagOf[i] = id
		net := st.nets[ev.Feeder]
		if net == nil {
			var err error
			if net, err = newAuthDay(dayClock, aggregateMin); err != nil {
				return nil, nil, err
			}
			st.nets[ev.Feeder] = net
		}
		if _, ok := net.lags[id]; !ok {
			if _, err := net.addLAG(id); err != nil {
				return nil, nil, err
			}
			st.netOf[id] = net
			order = append(order, id)
		}
		power[id] = max(power[id], uint32(math.Round(ev.PDis*1000)))
	}
	for i := range p.EVs {
		ev := &p.EVs[i]
		id, ok := st.lagOf[i]
		if !ok {
			continue
		}
		net := st.nets[ev.Feeder]
		b, err := auth.NewBV(ev.ID, authGroup, net.ca.Public())
		if err != nil {
			return nil, nil, err
		}
		if err := net.enrol(b); err != nil {
			return nil, nil, err
		}
		opts := auth.SessionOptions{Role: auth.RoleLoad, Schemes: []auth.Scheme{auth.SchemePseudonym}}
		if ev.PDis > 0 {
			opts.Role, opts.WillDischarge = role, will[i]
		}
		c, err := net.connect(b, net.lags[id], opts)
		if err != nil {
			return nil, nil, err
		}
		if c.s.State() != auth.BVCharging {
			return nil, nil, fmt.Errorf("EV %q was not admitted at %s: session %s, %v", ev.ID, id, c.s.State(), c.err)
		}
		st.sess[i] = c
		if ev.PDis > 0 {
			// Ready to give energy back: seed 002's precondition for a
			// discharge request is the fully-charged state; the vehicle's
			// sealed report carries its true arrival SOC, for the CA only.
			f, err := c.s.ReportStatus(auth.StatusFullyCharged, auth.Battery{SOCPermille: permille(ev.SOCArrive, ev.Capacity)})
			if err != nil {
				return nil, nil, fmt.Errorf("EV %q: %w", ev.ID, err)
			}
			if err := net.act(c, f); err != nil {
				return nil, nil, err
			}
		}
	}
	window := time.Duration(float64(p.Slots) * p.DT * float64(time.Hour))
	for _, id := range order {
		if power[id] == 0 {
			continue // only load vehicles here: nobody to ask
		}
		net := st.lagNet(id)
		out, req, err := net.ca.RequestDischarge(net.now, id, st.mode, power[id], window)
		if err != nil {
			return nil, nil, err
		}
		net.caOut(out)
		if err := net.run(); err != nil {
			return nil, nil, err
		}
		st.reqs[id] = req
	}
	bill := st.billing()
	for i := range p.EVs {
		ev := &p.EVs[i]
		if ev.PDis <= 0 {
			continue
		}
		c := st.sess[i]
		if c.err != nil {
			return nil, nil, fmt.Errorf("EV %q: %w", ev.ID, c.err)
		}
		// The vehicle knows its own answer from the CA's sealed
		// acknowledgement: it is discharging exactly when the CA granted it.
		ok := c.s.State() == auth.BVDischarging
		if ok != (bill[ev.ID][1] == 1) || ok && !will[i] {
			return nil, nil, fmt.Errorf("EV %q: the vehicle's state %s does not match the CA's record (%d agreements) or its owner's will (%v)", ev.ID, c.s.State(), bill[ev.ID][1], will[i])
		}
		st.agreed[i] = ok
	}
	for _, id := range order {
		req := st.reqs[id]
		if req == nil {
			continue
		}
		r := &runfile.DischargeRequest{LAG: id, StartSlot: 0, EndSlot: p.Slots, PowerW: req.PowerW}
		node := st.lagNet(id).lags[id]
		for _, v := range node.lag.Sessions() {
			if v.Active && (v.Role == auth.RoleStorage || v.Role == auth.RoleSupply) {
				r.Asked++
				if v.Answers > 0 {
					r.Answered++
				}
			}
		}
		if a, ok := node.lag.DischargeAggregate(req.ID); ok {
			n, w := int(a.Count), a.TotalW
			r.LAGAnswers, r.LAGAgreedW = &n, &w
		}
		st.request[id] = r
	}
	q := *p
	q.EVs = append([]charging.EV(nil), p.EVs...)
	for i := range q.EVs {
		ev := &q.EVs[i]
		if ev.PDis <= 0 {
			continue
		}
		r := st.request[st.lagOf[i]]
		r.Feeder, r.Bus = ev.Feeder, p.Feeders[ev.Feeder].Buses[ev.Bus].Name
		if st.agreed[i] {
			r.Agreed++
		} else {
			ev.PDis = 0 // declined: a battery that charges only
		}
	}
	for _, id := range order {
		if r := st.request[id]; r != nil {
			st.doc.Requests = append(st.doc.Requests, *r)
			st.doc.Asked += r.Asked
			st.doc.Agreed += r.Agreed
		}
	}
	if err := st.checkAgreed(&q); err != nil {
		return nil, nil, err
	}
	return &q, st, nil
}

// lagNet is the authentication network (the feeder's) a LAG belongs to.
func (st *dischargeStep) lagNet(id string) *authDay { return st.netOf[id] }

// billing is every CA's billing record, by vehicle.
func (st *dischargeStep) billing() map[string][2]int64 {
	out := map[string][2]int64{}
	for _, n := range st.nets {
		if n != nil {
			for k, v := range n.ca.Billing() {
				out[k] = v
			}
		}
	}
	return out
}

func permille(soc, capacity float64) uint16 {
	return uint16(math.Round(1000 * math.Min(1, math.Max(0, soc/capacity))))
}

// checkAgreed refuses a problem in which a vehicle that did not agree to
// the CA's request could discharge.
func (st *dischargeStep) checkAgreed(p *charging.Problem) error {
	for i, ev := range p.EVs {
		if ev.PDis > 0 && !st.agreed[i] {
			return fmt.Errorf("EV %q may discharge up to %v kW but did not agree to the CA's discharge request at %s; give it pdis 0 (it charges only) or let its owner agree (--v2g-willing)", ev.ID, ev.PDis, st.lagOf[i])
		}
	}
	return nil
}

// exports is a vehicle's metered export per settlement window, Wh, grid
// side: the discharging part of its net schedule. It refuses export by a
// vehicle that did not agree, or outside its request's window.
func (st *dischargeStep) exports(p *charging.Problem, i int, x []float64) ([]int64, error) {
	ev := &p.EVs[i]
	W := (p.Slots + st.spw - 1) / st.spw
	wh := make([]float64, W)
	r := st.request[st.lagOf[i]]
	for t, v := range x {
		if v >= 0 {
			continue
		}
		if !st.agreed[i] {
			return nil, fmt.Errorf("EV %q discharged %.3f kW in slot %d without agreeing to the CA's discharge request; its schedule is wrong (a decliner has pdis 0)", ev.ID, -v, t)
		}
		if r == nil || t < r.StartSlot || t >= r.EndSlot {
			return nil, fmt.Errorf("EV %q discharged %.3f kW in slot %d, outside its agreed window", ev.ID, -v, t)
		}
		wh[t/st.spw] += -v * p.DT * 1000
	}
	out := make([]int64, W)
	for w, e := range wh {
		out[w] = int64(math.Round(e))
	}
	return out, nil
}

// shortfall is the meters' model of a vehicle that delivers less than its
// schedule: in each settlement window, with this probability, a uniform
// 50-100% of its scheduled export.
const shortfall = 0.1

// meter is what vehicle i's meter reads per window against its scheduled
// export ex, drawn from the seed on a stream of the vehicle's own (two
// draws per window whatever the outcome, so windows do not shift each
// other's draws).
func (st *dischargeStep) meter(i int, ex []int64) []int64 {
	rng := rand.New(rand.NewPCG(st.seed^0x6d65746572, uint64(i))) // "meter"
	out := make([]int64, len(ex))
	for w, e := range ex {
		u, f := rng.Float64(), 0.5+0.5*rng.Float64()
		if u >= shortfall {
			f = 1
		}
		out[w] = int64(math.Floor(float64(e) * f))
	}
	return out
}

// settle meters every bidirectional vehicle's export under the coordinated
// schedules, has each vehicle that agreed report it sealed to the CA as it
// stops discharging, and pays for it: v2v[i] Wh to the vehicle's V2V
// buyers (settled on the ledger by the V2V step), the rest by the grid
// company at the posted price.
func (st *dischargeStep) settle(p *charging.Problem, sol *charging.Solution, v2v map[int]int64) error {
	for _, net := range st.nets {
		if net != nil {
			net.now = dayClock.Add(time.Duration(float64(p.Slots)*p.DT*float64(time.Hour)) - time.Second) // at the end of the window
		}
	}
	metered := map[int]int64{}
	for i := range p.EVs {
		c := st.sess[i]
		if c == nil || c.s.State() != auth.BVDischarging {
			continue
		}
		ex, err := st.exports(p, i, sol.Schedules[i])
		if err != nil {
			return err
		}
		var total int64
		for _, e := range st.meter(i, ex) {
			total += e
		}
		metered[i] = total
		ev := &p.EVs[i]
		f, err := c.s.ReportStatus(auth.StatusStopDischarg, auth.Battery{SOCPermille: permille(finalSOC(p, ev, sol.Schedules[i]), ev.Capacity), EnergyWh: int32(-total)})
		if err != nil {
			return fmt.Errorf("EV %q: %w", ev.ID, err)
		}
		if err := st.nets[ev.Feeder].act(c, f); err != nil {
			return err
		}
	}
	bill := st.billing()
	d := st.doc
	for i := range p.EVs {
		ev := &p.EVs[i]
		if _, asked := st.agreed[i]; !asked {
			continue
		}
		ex, err := st.exports(p, i, sol.Schedules[i])
		if err != nil {
			return err
		}
		b := runfile.DischargeBill{EV: ev.ID, LAG: st.lagOf[i], Agreed: st.agreed[i], ExportWh: ex, MeteredWh: st.meter(i, ex), Billed: bill[ev.ID][0]}
		for _, e := range ex {
			d.ScheduledWh += e
		}
		if -b.Billed != metered[i] {
			return fmt.Errorf("EV %q: the CA billed %d Wh, the meter read %d Wh out", ev.ID, b.Billed, metered[i])
		}
		b.V2VWh = v2v[i]
		if b.V2VWh > metered[i] {
			return fmt.Errorf("EV %q: %d Wh delivered V2V but only %d Wh metered out", ev.ID, b.V2VWh, metered[i])
		}
		b.ToGridWh = metered[i] - b.V2VWh
		b.GridPaid = b.ToGridWh * d.Price / 1000
		d.ExportWh += metered[i]
		d.V2VWh += b.V2VWh
		d.ToGridWh += b.ToGridWh
		d.GridPaid += b.GridPaid
		if metered[i] > 0 {
			d.Discharge++
		}
		d.Bills = append(d.Bills, b)
	}
	return nil
}

// finalSOC is a battery vehicle's state of charge at departure under x.
func finalSOC(p *charging.Problem, ev *charging.EV, x []float64) float64 {
	s := ev.SOCArrive
	for _, v := range x {
		s += ev.Efficiency*p.DT*math.Max(v, 0) - p.DT/ev.DisEfficiency*math.Max(-v, 0)
	}
	return s
}
