package auth

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

var schemes = []Scheme{SchemePseudonym, SchemeLSAG}

// TestChargingToFullyCharged is seed 002's first transition: the LAG's
// challenge, the vehicle's group-attribute proof, the LAG asking the CA,
// the CA's permit, the vehicle checking it and granting access; then the
// vehicle reports fully charged through a pseudo-status.
func TestChargingToFullyCharged(t *testing.T) {
	for _, sc := range schemes {
		t.Run(sc.String(), func(t *testing.T) {
			n := newTestNet(t, CAConfig{}, "lag-1")
			var bvs []*BV
			for i := range 4 {
				bvs = append(bvs, n.newBV("VIN-000"+string(rune('1'+i)), "utility-a", 3))
			}
			c := n.connect(bvs[0], "lag-1", SessionOptions{Role: RoleLoad, Schemes: []Scheme{sc}, RingSize: 4, MinRingSize: 4})
			n.mustCharging(c)
			v := c.s.View()
			if v.LAGID != "lag-1" || !v.Home || v.Service != ServiceFull || v.Scheme != sc {
				t.Fatalf("vehicle view %+v", v)
			}
			// The LAG learned the group attribute and nothing that names the vehicle.
			lv := n.lagView(c)
			if lv.Group != "utility-a" || lv.Scheme != sc || !lv.Active {
				t.Fatalf("LAG view %+v", lv)
			}
			if strings.Contains(strings.ToLower(lagViewText(c.lag.lag)), "vin-") {
				t.Fatalf("the LAG's view names the vehicle: %s", lagViewText(c.lag.lag))
			}
			// The CA knows who it is.
			b := c.s.Binding()
			if id, err := n.ca.Trace(b); err != nil || id != "VIN-0001" {
				t.Fatalf("CA traced %q, %v", id, err)
			}
			// One signature confirms the batch.
			n.lagOut(c.lag, c.lag.lag.ConfirmBatch(n.now))
			n.run()
			if !c.s.View().BatchConfirmed {
				t.Fatalf("batch not confirmed: %v", c.err)
			}
			// Fully charged: a sealed status the LAG forwards without reading.
			n.act(c, full(998, 41000))
			if c.s.State() != BVFullyCharged || c.s.View().SOCPermille != 998 || c.s.View().BilledWh != 41000 {
				t.Fatalf("after full: state %s, view %+v, err %v", c.s.State(), c.s.View(), c.err)
			}
			if n.lagView(c).Reports != 1 {
				t.Fatal("status not forwarded")
			}
		})
	}
}

func lagViewText(l *LAG) string {
	var sb strings.Builder
	for _, v := range l.Sessions() {
		sb.WriteString(hex.EncodeToString([]byte(v.Group)) + v.Group + v.CredentialRef + v.Binding + v.Role.String())
	}
	return sb.String()
}

func full(soc uint16, wh int32) func(*BVSession) ([]byte, error) {
	return func(s *BVSession) ([]byte, error) {
		return s.ReportStatus(StatusFullyCharged, Battery{SOCPermille: soc, EnergyWh: wh})
	}
}

// frameLens lists the lengths of the frames captured between from and to.
func frameLens(hops []hop, from, to string) []int {
	var ls []int
	for _, h := range hops {
		if strings.HasPrefix(h.from, from) && strings.HasPrefix(h.to, to) {
			ls = append(ls, len(h.data))
		}
	}
	return ls
}

// TestFullyChargedToDischarging is seed 002's second transition: the CA's
// request through the LAG with the LAG's HMAC operator, the vehicle's
// Agree or Decline sealed to the CA and signed anonymously, the CA's
// sealed acknowledgement. The LAG cannot tell the answers apart: every
// frame of an Agree run has the length of the same frame in a Decline run.
func TestFullyChargedToDischarging(t *testing.T) {
	for _, sc := range schemes {
		t.Run(sc.String(), func(t *testing.T) {
			lens := map[bool][]int{}
			for _, agree := range []bool{true, false} {
				n := newTestNet(t, CAConfig{AggregateMin: 1}, "lag-1")
				b := n.newBV("VIN-7", "utility-a", 2)
				n.newBV("VIN-8", "utility-a", 1) // a second ring member
				c := n.connect(b, "lag-1", SessionOptions{Role: RoleStorage, Schemes: []Scheme{sc}, WillDischarge: agree})
				n.mustCharging(c)
				n.act(c, full(1000, 40000))
				n.captured = nil
				out, req, err := n.ca.RequestDischarge(n.now, "lag-1", Centralized, 6600, 3600e9)
				if err != nil {
					t.Fatal(err)
				}
				n.caOut(out)
				n.run()
				if c.err != nil {
					t.Fatal(c.err)
				}
				want := BVFullyCharged
				if agree {
					want = BVDischarging
				}
				if c.s.State() != want || c.s.View().Requests != 1 || len(c.s.View().Acks) != 1 {
					t.Fatalf("agree=%v: state %s, view %+v", agree, c.s.State(), c.s.View())
				}
				if n.lagView(c).Answers != 1 {
					t.Fatal("answer not forwarded")
				}
				// The CA learned the answer, and who gave it.
				if got := n.ca.requests[req.ID].answers[c.s.Binding()]; (got == Agree) != agree {
					t.Fatalf("CA recorded %v", got)
				}
				lens[agree] = append(frameLens(n.captured, "bv", "lag"), frameLens(n.captured, "lag", "bv")...)
				lens[agree] = append(lens[agree], frameLens(n.captured, "lag", "ca")...)
				lens[agree] = append(lens[agree], frameLens(n.captured, "ca", "lag")...)
			}
			if fmt.Sprint(lens[true]) != fmt.Sprint(lens[false]) {
				t.Fatalf("frame lengths differ: agree %v, decline %v", lens[true], lens[false])
			}
		})
	}
}

// TestDischargingToCharging is seed 002's third transition: the vehicle
// quits discharging with a sealed status; the LAG forwards only the
// pseudo-status; the CA answers with the real status sealed to the vehicle
// and an aggregate (over at least AggregateMin vehicles) to the LAG.
func TestDischargingToCharging(t *testing.T) {
	for _, sc := range schemes {
		t.Run(sc.String(), func(t *testing.T) {
			n := newTestNet(t, CAConfig{AggregateMin: 2, AutoDischarge: true}, "lag-1")
			bvs := []*BV{n.newBV("VIN-0", "utility-a", 2), n.newBV("VIN-1", "utility-a", 2)}
			var cs []*bvConn
			for _, b := range bvs {
				cs = append(cs, n.connect(b, "lag-1", SessionOptions{Role: RoleSupply, Schemes: []Scheme{sc}, WillDischarge: true}))
			}
			// The first fully-charged report makes the CA ask the LAG's
			// suppliers; the second vehicle, still charging then, declined,
			// and changes its mind once it is full.
			for _, c := range cs {
				n.mustCharging(c)
				n.act(c, full(990, 30000))
			}
			revise(n, cs[1])
			for _, c := range cs {
				if c.s.State() != BVDischarging {
					t.Fatalf("%s: %s (%v)", c.name, c.s.State(), c.err)
				}
			}
			// Released when two answers were in (one agree, one decline);
			// the change of mind alone is not released.
			var reqID [16]byte
			for id := range n.ca.requests {
				reqID = id
			}
			if agg, _ := cs[0].lag.lag.DischargeAggregate(reqID); agg.Count != 2 || agg.TotalW != 7000 {
				t.Fatalf("discharge aggregate %+v", agg)
			}
			for i, c := range cs {
				n.act(c, func(s *BVSession) ([]byte, error) {
					return s.ReportStatus(StatusStopDischarg, Battery{SOCPermille: uint16(700 + i), EnergyWh: -5000})
				})
				if c.s.State() != BVCharging || c.s.View().SOCPermille != int64(700+i) || c.s.View().BilledWh != 25000 {
					t.Fatalf("%s: state %s view %+v err %v", c.name, c.s.State(), c.s.View(), c.err)
				}
			}
			// The LAG saw only sums over both vehicles: the two full
			// reports, then the two stops, never one report alone.
			if agg := cs[0].lag.lag.StatusAggregate(); agg.Count != 2 || agg.TotalWh != -2*5000 {
				t.Fatalf("status aggregate %+v", agg)
			}
			if b := n.ca.Billing(); b["VIN-0"] != [2]int64{25000, 1} || b["VIN-1"] != [2]int64{25000, 1} {
				t.Fatalf("billing %v", b)
			}
		})
	}
}

// TestAggregateThreshold: with fewer answers than AggregateMin the LAG gets
// no aggregate, so it cannot read one vehicle's answer from a total.
func TestAggregateThreshold(t *testing.T) {
	n := newTestNet(t, CAConfig{AggregateMin: 3}, "lag-1")
	b := n.newBV("VIN-1", "utility-a", 1)
	c := n.connect(b, "lag-1", SessionOptions{Role: RoleStorage, WillDischarge: true})
	n.act(c, full(1000, 1))
	out, _, err := n.ca.RequestDischarge(n.now, "lag-1", Centralized, 5000, 3600e9)
	if err != nil {
		t.Fatal(err)
	}
	n.caOut(out)
	n.run()
	if c.s.State() != BVDischarging {
		t.Fatal(c.s.State(), c.err)
	}
	if agg, ok := c.lag.lag.DischargeAggregate(n.ca.openRequest(n.now, "lag-1").req.ID); ok {
		t.Fatalf("aggregate over one vehicle released: %+v", agg)
	}
}

// TestRoles: discharge requests reach storage and supply vehicles only; a
// load vehicle never sees one.
func TestRoles(t *testing.T) {
	n := newTestNet(t, CAConfig{}, "lag-1")
	roles := []Role{RoleLoad, RoleStorage, RoleSupply}
	var cs []*bvConn
	for i, r := range roles {
		cs = append(cs, n.connect(n.newBV(fmt.Sprintf("VIN-%d", i), "utility-a", 1), "lag-1", SessionOptions{Role: r}))
	}
	out, _, err := n.ca.RequestDischarge(n.now, "lag-1", Centralized, 5000, 3600e9)
	if err != nil {
		t.Fatal(err)
	}
	n.caOut(out)
	n.run()
	for i, c := range cs {
		want := 1
		if roles[i] == RoleLoad {
			want = 0
		}
		if got := c.s.View().Requests; got != want {
			t.Errorf("%s vehicle got %d requests", roles[i], got)
		}
		if n.lagView(c).Role != roles[i] {
			t.Errorf("LAG sees role %s", n.lagView(c).Role)
		}
	}
}

// TestDistributedDischarging: supply vehicles feed the station's pool and
// the LAG shares it among load vehicles. Load vehicles learn their share
// and nothing about suppliers; the LAG knows the total, not who supplied.
func TestDistributedDischarging(t *testing.T) {
	n := newTestNet(t, CAConfig{AggregateMin: 2}, "lag-1")
	var sup, load []*bvConn
	for i := range 3 {
		c := n.connect(n.newBV(fmt.Sprintf("S3P-%d", i), "utility-a", 1), "lag-1", SessionOptions{Role: RoleSupply, WillDischarge: i < 2})
		n.act(c, full(1000, 1))
		sup = append(sup, c)
	}
	for i := range 2 {
		load = append(load, n.connect(n.newBV(fmt.Sprintf("LOAD-%d", i), "utility-a", 1), "lag-1", SessionOptions{Role: RoleLoad}))
	}
	out, req, err := n.ca.RequestDischarge(n.now, "lag-1", Distributed, 6000, 1800e9)
	if err != nil {
		t.Fatal(err)
	}
	n.caOut(out)
	n.run()
	if agg, _ := sup[0].lag.lag.DischargeAggregate(req.ID); agg.Count != 2 || agg.TotalW != 12000 {
		t.Fatalf("aggregate %+v", agg)
	}
	n.captured = nil
	n.lagOut(sup[0].lag, sup[0].lag.lag.AllocateV2V(req.ID))
	n.run()
	for _, c := range load {
		if c.s.View().V2VWh != 3000 { // 12 kW for half an hour, shared by two
			t.Fatalf("%s got %d Wh (%v)", c.name, c.s.View().V2VWh, c.err)
		}
	}
	// What went to load vehicles names no supplier: no supplier's binding
	// or credential reference appears in the allocation frames' plaintext
	// (the LAG's own session views are the plaintext it could put there).
	for _, h := range n.captured {
		if strings.HasPrefix(h.to, "bv:S3P") {
			t.Fatalf("suppliers were told about the allocation: %s", h.to)
		}
	}
	for _, c := range sup {
		v := n.lagView(c)
		if v.V2VWh != 0 {
			t.Fatal("supplier session credited")
		}
	}
	if got := fmt.Sprint(frameLens(n.captured, "lag", "bv:LOAD")); got != fmt.Sprint([]int{len(n.captured[0].data), len(n.captured[1].data)}) {
		t.Fatalf("allocation frames %v", got)
	}
}

// TestHomeAndVisiting: at home a vehicle gets full service and a
// resumption ticket; later it resumes with symmetric cryptography only and
// no permit round trip. Visiting, it gets basic service, no ticket, and its
// inquiries are refused. Nothing the two LAGs hold links the sessions.
func TestHomeAndVisiting(t *testing.T) {
	for _, sc := range schemes {
		t.Run(sc.String(), func(t *testing.T) {
			n := newTestNet(t, CAConfig{}, "home-lag")
			n.addLAG("away-lag", "utility-b", LAGConfig{})
			b := n.newBV("VIN-1", "utility-a", 4)
			n.newBV("VIN-2", "utility-a", 1)
			opts := SessionOptions{Role: RoleLoad, Schemes: []Scheme{sc}, Resume: true}
			home := n.connect(b, "home-lag", opts)
			n.mustCharging(home)
			if !home.s.View().Home || !b.HasTicket("home-lag") {
				t.Fatalf("home: %+v, ticket %v", home.s.View(), b.HasTicket("home-lag"))
			}
			n.act(home, (*BVSession).Inquire)
			if home.err != nil {
				t.Fatal(home.err)
			}
			hv := n.lagView(home)
			n.bye(home)

			away := n.connect(b, "away-lag", opts)
			n.mustCharging(away)
			if v := away.s.View(); v.Home || v.Service != ServiceBasic || b.HasTicket("away-lag") {
				t.Fatalf("visiting: %+v", v)
			}
			av := n.lagView(away)
			n.act(away, (*BVSession).Inquire)
			if !errors.Is(away.lagErr, ErrNotPermitted) {
				t.Fatalf("inquiry while visiting: %v", away.lagErr)
			}

			n.captured = nil
			again := n.connect(b, "home-lag", opts)
			n.mustCharging(again)
			if v := again.s.View(); !v.Resumed || !v.Home || v.Service != ServiceFull {
				t.Fatalf("resumed: %+v", v)
			}
			for _, h := range n.captured {
				if h.to == "ca" && len(h.data) > 200 {
					t.Fatal("resumption sent credential evidence to the CA")
				}
			}
			if id, err := n.ca.Trace(again.s.Binding()); err != nil || id != "VIN-1" {
				t.Fatalf("CA cannot bill the resumed session: %q %v", id, err)
			}
			// No identifier in common between the home and the visiting LAG.
			for _, x := range []string{hv.Binding, hv.CredentialRef} {
				for _, y := range []string{av.Binding, av.CredentialRef} {
					if x == y {
						t.Fatal("home and visiting sessions share an identifier")
					}
				}
			}
			// A resumed session signs later messages under the original
			// credential, which the CA checks.
			n.act(again, full(1000, 500))
			if again.err != nil || again.s.View().BilledWh != 500 {
				t.Fatalf("status on a resumed session: %v %+v", again.err, again.s.View())
			}
		})
	}
}

// revise makes a vehicle re-answer open requests after a change of state.
func revise(n *testNet, c *bvConn) {
	n.t.Helper()
	frames, err := c.s.ReviseAnswers(n.now)
	if err != nil {
		n.t.Fatal(err)
	}
	for _, f := range frames {
		n.fromBV(c, f)
	}
	n.run()
}

// TestChangeOfMind: a vehicle agrees, then declines the same request
// (seed 002: it may cancel a positive reply), and the CA's record and the
// vehicle's state follow; a session cannot flood the CA with answers.
func TestChangeOfMind(t *testing.T) {
	n := newTestNet(t, CAConfig{}, "lag-1")
	c := n.connect(n.newBV("VIN-1", "utility-a", 1), "lag-1", SessionOptions{Role: RoleStorage, WillDischarge: true})
	n.act(c, full(1000, 1))
	out, req, err := n.ca.RequestDischarge(n.now, "lag-1", Centralized, 5000, 3600e9)
	if err != nil {
		t.Fatal(err)
	}
	n.caOut(out)
	n.run()
	if c.s.State() != BVDischarging {
		t.Fatal(c.s.State(), c.err)
	}
	for i, will := range []bool{false, true, false} {
		c.s.SetWillDischarge(will)
		revise(n, c)
		want, st := Decline, BVFullyCharged
		if will {
			want, st = Agree, BVDischarging
		}
		if got := n.ca.requests[req.ID].answers[c.s.Binding()]; got != want || c.s.State() != st {
			t.Fatalf("change %d: CA has %v, vehicle %s (%v)", i, got, c.s.State(), c.err)
		}
	}
	// A fifth answer to the same request is refused.
	d := c.s.requests[req.ID]
	f, err := c.s.answer(n.now, d)
	if err != nil {
		t.Fatal(err)
	}
	n.fromBV(c, f)
	n.run()
	if !errors.Is(c.lagErr, ErrNotPermitted) {
		t.Fatalf("answer flood: %v", c.lagErr)
	}
}

// TestAggregatesResistDifferencing: the LAG gets sums over disjoint
// batches of at least AggregateMin vehicles, never a running total it
// could difference to isolate one vehicle's report.
func TestAggregatesResistDifferencing(t *testing.T) {
	const k = 3
	n := newTestNet(t, CAConfig{AggregateMin: k}, "lag-1")
	var cs []*bvConn
	for i := range 2 * k {
		cs = append(cs, n.connect(n.newBV(fmt.Sprintf("VIN-%d", i), "utility-a", 1), "lag-1", SessionOptions{Role: RoleLoad}))
	}
	var seen []Aggregate
	for i, c := range cs {
		n.act(c, full(1000, int32(1000*(i+1))))
		if a := c.lag.lag.StatusAggregate(); len(seen) == 0 || a != seen[len(seen)-1] {
			if a.Count != 0 {
				seen = append(seen, a)
			}
		}
	}
	want := []Aggregate{{Count: k, TotalWh: 1000 + 2000 + 3000}, {Count: k, TotalWh: 4000 + 5000 + 6000}}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("releases %v, want %v", seen, want)
	}
}

// TestMinimumRing: a vehicle refuses to sign with a ring smaller than its
// minimum anonymity set (here: alone in its copy of the group list).
func TestMinimumRing(t *testing.T) {
	n := newTestNet(t, CAConfig{}, "lag-1")
	b := n.newBV("VIN-1", "utility-a", 1)
	c := n.connect(b, "lag-1", SessionOptions{Schemes: []Scheme{SchemeLSAG}})
	if !errors.Is(c.err, ErrNoCredential) {
		t.Fatalf("ring of one: %v", c.err)
	}
	n.newBV("VIN-2", "utility-a", 1)
	n.newBV("VIN-3", "utility-a", 1)
	c = n.connect(b, "lag-1", SessionOptions{Schemes: []Scheme{SchemeLSAG}, MinRingSize: 3})
	n.mustCharging(c)
	if got := c.s.cred.ring.Len(); got != 3 {
		t.Fatalf("ring of %d", got)
	}
}

// TestSessionExpires: the LAG ends a session when its permit expires.
func TestSessionExpires(t *testing.T) {
	n := newTestNet(t, CAConfig{PermitLifetime: time.Hour}, "lag-1")
	c := n.connect(n.newBV("VIN-1", "utility-a", 1), "lag-1", SessionOptions{})
	n.mustCharging(c)
	n.now = n.now.Add(59 * time.Minute)
	n.lagOut(c.lag, c.lag.lag.Tick(n.now))
	n.run()
	if !authenticated(n, c) {
		t.Fatal("ended early")
	}
	n.now = n.now.Add(time.Minute)
	n.lagOut(c.lag, c.lag.lag.Tick(n.now))
	n.run()
	if authenticated(n, c) || !errors.Is(c.err, ErrExpired) {
		t.Fatalf("session outlived its permit: %v", c.err)
	}
}
