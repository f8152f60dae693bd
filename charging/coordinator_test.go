package charging

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// memoryNet runs the SO's Coordinator and one Vehicle per EV as separate
// parties that share nothing but messages: every broadcast and report goes
// through its binary encoding, reports arrive in a shuffled order, and some
// are delivered twice. It returns the vehicles' final schedules (in EV
// order) and the coordinator.
func memoryNet(t *testing.T, p *Problem, seed uint64, restartAt int) ([][]float64, *Coordinator) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	T := p.Slots
	// The SO's knowledge: buses, member pseudonyms, the plugged-in count.
	type key struct{ f, b int }
	byBus := map[key][]int{}
	plugged := make([]int, T)
	for i, ev := range p.EVs {
		byBus[key{ev.Feeder, ev.Bus}] = append(byBus[key{ev.Feeder, ev.Bus}], i)
		for tt := ev.Arrive; tt < ev.Depart; tt++ {
			plugged[tt]++
		}
	}
	var buses []Bus
	var members [][]string
	for fi := range p.Feeders {
		for b := range p.Feeders[fi].Buses {
			if evs := byBus[key{fi, b}]; len(evs) > 0 {
				buses = append(buses, Bus{Feeder: fi, Bus: b, Vehicles: len(evs)})
				var m []string
				for _, i := range evs {
					m = append(m, "ps-"+p.EVs[i].ID)
				}
				members = append(members, m)
			}
		}
	}
	maxPlugged := 0
	for _, c := range plugged {
		maxPlugged = max(maxPlugged, c)
	}
	op, err := NewOperator(OperatorConfig{Slots: T, DT: p.DT, VMin: p.VMin, Feeders: p.Feeders, Buses: buses, MaxPlugged: maxPlugged})
	if err != nil {
		t.Fatal(err)
	}
	co, err := NewCoordinator(op, members)
	if err != nil {
		t.Fatal(err)
	}
	vehicles := make([]Vehicle, len(p.EVs))
	busIndex := map[key]int{}
	for g, b := range buses {
		busIndex[key{b.Feeder, b.Bus}] = g
	}
	for i := range p.EVs {
		vehicles[i] = NewVehicle(&p.EVs[i], T, p.DT, nil)
	}
	scratch, idx := make([]float64, T), make([]int, T)
	for rounds := 0; co.Phase() != PhaseDone; rounds++ {
		if rounds > 20000 {
			t.Fatal("no end after 20000 rounds")
		}
		var wire [][]byte
		var from []int
		for g := range buses {
			bc := co.Broadcast(g)
			data, err := bc.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			for _, i := range byBus[key{buses[g].Feeder, buses[g].Bus}] {
				var got Broadcast
				if err := got.UnmarshalBinary(data); err != nil {
					t.Fatal(err)
				}
				r, ok := vehicles[i].Answer(&got, "ps-"+p.EVs[i].ID, scratch, idx)
				if !ok {
					t.Fatalf("vehicle %s did not answer round %d", p.EVs[i].ID, got.Round)
				}
				enc, err := r.MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				wire = append(wire, enc)
				from = append(from, g)
				if rng.IntN(10) == 0 { // at-least-once: a second copy
					wire = append(wire, enc)
					from = append(from, g)
				}
			}
		}
		rng.Shuffle(len(wire), func(a, b int) { wire[a], wire[b] = wire[b], wire[a]; from[a], from[b] = from[b], from[a] })
		for k, data := range wire {
			var r Report
			if err := r.UnmarshalBinary(data); err != nil {
				t.Fatal(err)
			}
			if err := co.Handle(from[k], &r); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := co.Advance(); err != nil {
			t.Fatal(err)
		}
		if rounds == restartAt {
			// The SO crashes between rounds: a new process builds its
			// cores from the configuration and the saved state alone.
			var file bytes.Buffer
			if err := gob.NewEncoder(&file).Encode(co.State()); err != nil {
				t.Fatal(err)
			}
			var st CoordinatorState
			if err := gob.NewDecoder(&file).Decode(&st); err != nil {
				t.Fatal(err)
			}
			op2, err := NewOperator(OperatorConfig{Slots: T, DT: p.DT, VMin: p.VMin, Feeders: p.Feeders, Buses: buses, MaxPlugged: maxPlugged})
			if err != nil {
				t.Fatal(err)
			}
			if co, err = NewCoordinator(op2, members); err != nil {
				t.Fatal(err)
			}
			if err := co.Restore(st); err != nil {
				t.Fatal(err)
			}
		}
	}
	out := make([][]float64, len(p.EVs))
	for i := range vehicles {
		out[i] = vehicles[i].Schedule()
	}
	return out, co
}

// TestCoresOverMessagesMatchSolve checks the split: the SO and vehicle
// cores exchanging encoded messages, in any order and with duplicates,
// reach the same aggregate as the in-process solver, and the certificate
// assembled from the vehicles' bound terms is LowerBound's.
func TestCoresOverMessagesMatchSolve(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    *Problem
	}{
		{"paper", ieee13Problem(1, paperFleet, 0.95)},
		{"stressed", ieee13Problem(1, stressedFleet, 0.95)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := Solve(tc.p, Options{})
			if err != nil {
				t.Fatal(err)
			}
			scheds, co := memoryNet(t, tc.p, 7, -1)
			op := co.Operator()
			if !op.Converged() {
				t.Fatalf("message protocol did not converge in %d iterations (gap %g)", op.Iteration(), op.Gap())
			}
			// The true aggregate from the vehicles' own schedules.
			agg := tc.p.Baseline()
			for _, x := range scheds {
				for tt, v := range x {
					agg[tt] += v
				}
			}
			worst := 0.0
			for tt := range agg {
				worst = math.Max(worst, math.Abs(agg[tt]-want.Aggregate[tt]))
				worst = math.Max(worst, math.Abs(op.Aggregate()[tt]-want.Aggregate[tt]))
			}
			t.Logf("%s: %d iterations (Solve %d), aggregate within %.2g kW of Solve's", tc.name, op.Iteration(), want.Iterations, worst)
			if worst > 1e-6 {
				t.Fatalf("aggregate off Solve's by %g kW", worst)
			}
			// The distributed certificate is LowerBound's, to rounding.
			idx := make([]int, tc.p.Slots)
			q := op.BoundBase()
			for i := range tc.p.EVs {
				v := NewVehicle(&tc.p.EVs[i], tc.p.Slots, tc.p.DT, nil)
				g := -1
				for k, b := range op.Buses() {
					if b.Feeder == tc.p.EVs[i].Feeder && b.Bus == tc.p.EVs[i].Bus {
						g = k
					}
				}
				q += v.Bound(op.Aggregate(), op.Price(g), idx)
			}
			lb := LowerBound(tc.p, op.Aggregate(), op.Mu())
			if math.Abs(q-lb) > 1e-9*math.Abs(lb) {
				t.Fatalf("bound from the parties' terms %v, LowerBound %v", q, lb)
			}
		})
	}
}

// TestCoordinatorRefuses checks the protocol's refusals: stale and future
// rounds, strangers, the wrong phase, the wrong horizon, the wrong bus; and
// that a duplicate does not count twice.
func TestCoordinatorRefuses(t *testing.T) {
	p := ieee13Problem(1, fleet{perBus: 2, pmax: 6.6, energy: [2]float64{5, 10}, arrive: [2]int{0, 0}, depart: [2]int{48, 48}, buses: []string{"675", "652"}}, 0.95)
	op, err := NewOperator(OperatorConfig{Slots: p.Slots, DT: p.DT, VMin: p.VMin, Feeders: p.Feeders, MaxPlugged: 4,
		Buses: []Bus{{Feeder: 0, Bus: p.EVs[2].Bus, Vehicles: 2}, {Feeder: 0, Bus: p.EVs[0].Bus, Vehicles: 2}}})
	if err != nil {
		// the buses must be sorted: try the other order
		op, err = NewOperator(OperatorConfig{Slots: p.Slots, DT: p.DT, VMin: p.VMin, Feeders: p.Feeders, MaxPlugged: 4,
			Buses: []Bus{{Feeder: 0, Bus: p.EVs[0].Bus, Vehicles: 2}, {Feeder: 0, Bus: p.EVs[2].Bus, Vehicles: 2}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	names := func(b int) []string {
		var m []string
		for _, ev := range p.EVs {
			if ev.Bus == b {
				m = append(m, ev.ID)
			}
		}
		return m
	}
	co, err := NewCoordinator(op, [][]string{names(op.Buses()[0].Bus), names(op.Buses()[1].Bus)})
	if err != nil {
		t.Fatal(err)
	}
	b0 := op.Buses()[0]
	id := co.Members(0)[0]
	good := Report{Round: 0, Iter: -1, Phase: PhaseStart, Feeder: b0.Feeder, Bus: b0.Bus, Sender: id, Values: make([]float64, p.Slots)}
	mod := func(f func(*Report)) *Report { r := good; f(&r); return &r }
	for name, c := range map[string]struct {
		r    *Report
		want error
	}{
		"replayed round":        {mod(func(r *Report) { r.Round = -1 }), ErrStaleReport},
		"future round":          {mod(func(r *Report) { r.Round = 5 }), ErrStaleReport},
		"stranger":              {mod(func(r *Report) { r.Sender = "intruder" }), ErrUnknownSender},
		"member of another bus": {mod(func(r *Report) { r.Sender = co.Members(1)[0] }), ErrUnknownSender},
		"wrong phase":           {mod(func(r *Report) { r.Phase = PhaseStep }), ErrBadReport},
		"short horizon":         {mod(func(r *Report) { r.Values = r.Values[:3] }), ErrBadReport},
		"wrong bus":             {mod(func(r *Report) { r.Bus = 1 }), ErrBadReport},
	} {
		if err := co.Handle(0, c.r); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	if co.Missing() != 4 {
		t.Fatalf("refused reports changed the count: %d missing", co.Missing())
	}
	for range 3 {
		if err := co.Handle(0, &good); err != nil {
			t.Fatal(err)
		}
	}
	if co.Missing() != 3 {
		t.Fatalf("a report delivered three times counted as %d", 4-co.Missing())
	}
	if _, _, err := co.Advance(); err == nil {
		t.Fatal("advanced a round with reports missing")
	}
}

// TestCoordinatorRestartLosesNothing restarts the SO from its saved state
// in the middle of the stressed run (multipliers active): the run goes on
// to bit-identical schedules and aggregate, with no round repeated or
// skipped.
func TestCoordinatorRestartLosesNothing(t *testing.T) {
	p := ieee13Problem(1, stressedFleet, 0.95)
	want, co1 := memoryNet(t, p, 3, -1)
	for _, at := range []int{0, 1, 150} {
		got, co2 := memoryNet(t, p, 3, at)
		if co2.Round() != co1.Round() || co2.Operator().Iteration() != co1.Operator().Iteration() {
			t.Fatalf("restart at round %d: %d rounds, %d iterations; without restart %d, %d", at, co2.Round(), co2.Operator().Iteration(), co1.Round(), co1.Operator().Iteration())
		}
		for i := range want {
			for tt := range want[i] {
				if want[i][tt] != got[i][tt] {
					t.Fatalf("restart at round %d: EV %d slot %d: %v, without restart %v", at, i, tt, got[i][tt], want[i][tt])
				}
			}
		}
		for tt, v := range co1.Operator().Aggregate() {
			if co2.Operator().Aggregate()[tt] != v {
				t.Fatalf("restart at round %d: aggregate differs in slot %d", at, tt)
			}
		}
	}
}

// TestCoordinatorDropIsExactForSurvivors drops two vehicles in the middle
// of the stressed run (they stop answering; the SO drops them): the day
// converges, the dropped vehicles freeze at the schedule the SO kept, and
// the aggregate is the optimum of the survivors' problem with the frozen
// schedules as fixed load, solved independently by Solve.
func TestCoordinatorDropIsExactForSurvivors(t *testing.T) {
	p := ieee13Problem(1, stressedFleet, 0.95)
	T := p.Slots
	cfg, busEVs := p.OperatorConfig(Options{})
	members := make([][]string, len(busEVs))
	busOfEV := make([]int, len(p.EVs))
	for g, evs := range busEVs {
		for _, i := range evs {
			members[g] = append(members[g], fmt.Sprint("ps-", i))
			busOfEV[i] = g
		}
	}
	op, err := NewOperator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	co, err := NewCoordinator(op, members)
	if err != nil {
		t.Fatal(err)
	}
	vs := make([]Vehicle, len(p.EVs))
	for i := range p.EVs {
		vs[i] = NewVehicle(&p.EVs[i], T, p.DT, nil)
	}
	gone := map[int]bool{3: true, 40: true}
	scratch, idx := make([]float64, T), make([]int, T)
	for rounds := 0; co.Phase() != PhaseDone; rounds++ {
		if rounds > 20000 {
			t.Fatal("no end")
		}
		for i := range p.EVs {
			if vs[i].Done() {
				continue
			}
			// From round 50 on, the two vehicles answer nothing: their
			// round-50 reports are lost after they stepped.
			b := co.Broadcast(busOfEV[i])
			r, ok := vs[i].Answer(&b, fmt.Sprint("ps-", i), scratch, idx)
			if !ok || (gone[i] && rounds >= 50) {
				continue
			}
			if err := co.Handle(busOfEV[i], &r); err != nil {
				t.Fatal(err)
			}
		}
		if rounds == 50 {
			if co.Ready() {
				t.Fatal("the round completed without the silent vehicles")
			}
			for g, ids := range co.Silent() {
				for _, id := range ids {
					if err := co.Drop(g, id); err != nil {
						t.Fatal(err)
					}
					var i int
					fmt.Sscanf(id, "ps-%d", &i)
					n := co.DropNotice(g, id)
					if err := vs[i].Freeze(n.Kept); err != nil {
						t.Fatal(err)
					}
				}
			}
			if len(co.Dropped()) == 0 {
				t.Fatal("nothing dropped")
			}
		}
		if _, _, err := co.Advance(); err != nil {
			t.Fatal(err)
		}
	}
	if !op.Converged() {
		t.Fatalf("not converged after %d iterations", op.Iteration())
	}
	// The survivors' problem: the dropped vehicles become fixed load.
	q := *p
	q.Feeders = append([]Feeder(nil), p.Feeders...)
	q.EVs = nil
	for fi := range q.Feeders {
		f := q.Feeders[fi]
		f.BaseP = make([][]float64, len(p.Feeders[fi].BaseP))
		for b := range f.BaseP {
			f.BaseP[b] = append([]float64(nil), p.Feeders[fi].BaseP[b]...)
		}
		q.Feeders[fi] = f
	}
	for i, ev := range p.EVs {
		if gone[i] {
			for tt, v := range vs[i].Schedule() {
				q.Feeders[ev.Feeder].BaseP[ev.Bus][tt] += v
			}
			continue
		}
		q.EVs = append(q.EVs, ev)
	}
	want, err := Solve(&q, Options{})
	if err != nil {
		t.Fatal(err)
	}
	agg := p.Baseline()
	for i := range vs {
		for tt, v := range vs[i].Schedule() {
			agg[tt] += v
		}
	}
	worst, view := 0.0, 0.0
	for tt := range agg {
		worst = math.Max(worst, math.Abs(agg[tt]-want.Aggregate[tt]))
		view = math.Max(view, math.Abs(op.Aggregate()[tt]-agg[tt]))
	}
	// Both runs are certified, each aggregate within sqrt(2 gap f) kW of
	// the one optimum (the objective is 1-strongly convex in it), but they
	// reach it by different paths, so they agree to the sum of the bounds.
	tol := math.Sqrt(2*op.Gap()*Objective(op.Aggregate())) + math.Sqrt(2*want.Gap*want.Objective)
	t.Logf("dropped %v at round 50; %d iterations; aggregate within %.2g kW of the survivors' optimum (certified bound %.2g kW); SO's view within %.2g kW of the vehicles' schedules",
		co.Dropped(), op.Iteration(), worst, tol, view)
	if worst > tol || view > 1e-9 {
		t.Fatalf("aggregate off the survivors' optimum by %g kW (bound %g), the SO's view off the vehicles' by %g kW", worst, tol, view)
	}
	// The SO refuses further reports from a dropped member.
	var g int
	for g = range co.Dropped() {
		break
	}
	r := Report{Round: co.Round(), Phase: PhaseStep, Feeder: op.Buses()[g].Feeder, Bus: op.Buses()[g].Bus, Sender: co.Dropped()[g][0], Values: make([]float64, T)}
	if err := co.Handle(g, &r); !errors.Is(err, ErrDropped) {
		t.Fatalf("report from a dropped member: %v", err)
	}
}
