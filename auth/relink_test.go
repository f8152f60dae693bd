package auth

import (
	"errors"
	"testing"
)

// relinkHolding re-links a LAG to the test net's CA and stops once the
// LAG has finished the handshake and asked for its sync, before the CA
// sees that request: the moment at which the LAG does not yet know
// whether the CA restarted. It returns a function that delivers the
// request (and runs everything that follows).
func (n *testNet) relinkHolding(node *lagNode) (release func()) {
	n.t.Helper()
	n.lagOut(node, node.lag.CADisconnected())
	var held [][]byte
	n.tamper = func(h hop) []byte {
		if h.from == "lag:"+node.name && h.to == "ca" && h.data[0] == frameData {
			held = append(held, h.data)
			return nil
		}
		return h.data
	}
	n.link(node)
	n.tamper = nil
	if len(held) == 0 || node.lag.Linked() {
		n.t.Fatalf("the LAG's sync request was not held: %d frames, linked %v", len(held), node.lag.Linked())
	}
	return func() {
		for _, f := range held {
			n.deliver(hop{"lag:" + node.name, "ca", f}, func(b []byte) { n.toCA(node, b) })
		}
		n.run()
	}
}

// TestResumptionHeldUntilFirstSync drives the order of events after a CA
// restart: the LAG re-links, and a home vehicle resumes with its ticket
// after the LAG finished the link's handshake but before the new CA
// instance's sync reached it. The LAG holds the resumption instead of
// admitting it on a ticket whose origin the restarted CA forgot (which
// the CA would then terminate, leaving the vehicle unserved); the sync
// shows the new instance and the vehicle is refused at once as unknown,
// never admitted, and its next session authenticates in full. When the
// CA did not restart, a resumption held the same way is admitted once the
// sync comes.
func TestResumptionHeldUntilFirstSync(t *testing.T) {
	n := newTestNet(t, CAConfig{}, "lag-1")
	node := n.lags["lag-1"]
	b := n.newBV("VIN-1", "utility-a", 4)
	resume := SessionOptions{Schemes: []Scheme{SchemePseudonym}, Resume: true}
	c := n.connect(b, "lag-1", resume)
	n.mustCharging(c)
	n.bye(c)
	if !b.HasTicket("lag-1") {
		t.Fatal("no ticket from the home LAG")
	}

	// The CA restarts (it forgets every session); the LAG re-links and
	// the vehicle comes before the sync.
	recs := n.ca.Records()
	ca, err := RestoreCAFrom(n.keys, CAConfig{}, func(table string, fn func(k, v []byte) error) error {
		for _, r := range recs {
			if r.Table == table {
				if err := fn(r.Key, r.Value); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	n.ca = ca
	release := n.relinkHolding(node)
	c = n.connect(b, "lag-1", resume)
	if c.s.State() != BVAwaitPermit || c.err != nil {
		t.Fatalf("a resumption before the first sync was decided: state %v, %v", c.s.State(), c.err)
	}
	admitted := 0
	n.lagEvents = func(_ *lagNode, evs []Event) {
		for _, e := range evs {
			if e.Kind == "resumed" {
				admitted++
			}
		}
	}
	release()
	n.lagEvents = nil
	if !node.lag.Linked() {
		t.Fatalf("the LAG did not link: %v", n.caErrs)
	}
	if admitted != 0 || c.s.State() == BVCharging || !errors.Is(c.err, ErrUnknown) {
		t.Fatalf("the held resumption after the CA's restart: state %v, %v; want refused as unknown", c.s.State(), c.err)
	}
	for _, v := range n.ca.Sessions() {
		t.Fatalf("the restarted CA heard of a session: %+v", v)
	}
	if b.HasTicket("lag-1") {
		t.Fatal("the vehicle kept the ticket the LAG refused")
	}
	c = n.connect(b, "lag-1", resume)
	n.mustCharging(c)
	if v := n.lagView(c); v.Resumed {
		t.Fatalf("after the refusal: %+v, want a full authentication", v)
	}
	n.bye(c)

	// The same order with a CA that did not restart: held, then admitted.
	release = n.relinkHolding(node)
	c = n.connect(b, "lag-1", resume)
	if c.s.State() != BVAwaitPermit || c.err != nil {
		t.Fatalf("held resumption: state %v, %v", c.s.State(), c.err)
	}
	release()
	n.mustCharging(c)
	if v := n.lagView(c); !v.Resumed {
		t.Fatalf("the held resumption at an unchanged CA: %+v, want resumed", v)
	}
	if len(n.caErrs) > 0 {
		t.Fatalf("link errors: %v", n.caErrs)
	}
	active := 0
	for _, v := range n.ca.Sessions() {
		if v.Active {
			active++
		}
	}
	if active != 1 {
		t.Fatalf("the CA holds %d active sessions, want the resumed one", active)
	}
}
