package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/flynn/noise"
)

// The test network: one CA, LAGs and vehicles in one process, with every
// frame passing through deliver, where tests capture or tamper with it.

var t0 = time.Date(2026, 3, 2, 18, 10, 0, 0, time.UTC)

type lagNode struct {
	name   string
	lag    *LAG
	caConn ConnID // the CA's side of the link
	bvs    map[ConnID]*bvConn
}

type bvConn struct {
	name   string
	s      *BVSession
	lag    *lagNode
	id     ConnID
	err    error // first error seen by the vehicle
	lagErr error // first error the LAG reported for this session
	closed bool
	raw    func([]byte) // attackers: receives the LAG's frames instead of s
}

type hop struct {
	from, to string
	data     []byte
}

type testNet struct {
	t         testing.TB
	now       time.Time
	ca        *CA
	keys      *CAKeys
	lags      map[string]*lagNode
	autoFlush bool
	captured  []hop
	// tamper may change a frame in flight; returning nil drops it.
	tamper func(h hop) []byte
	// lagEvents, if set, sees every event a LAG emits (not the CA's).
	lagEvents func(node *lagNode, evs []Event)
	caErrs    []error
	events    []Event
	pending   []func()
}

func newTestNet(t testing.TB, cfg CAConfig, lags ...string) *testNet {
	t.Helper()
	keys, err := GenerateCAKeys()
	if err != nil {
		t.Fatal(err)
	}
	ca, err := NewCA(keys, cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := &testNet{t: t, now: t0, ca: ca, keys: keys, lags: map[string]*lagNode{}, autoFlush: true}
	for _, spec := range lags {
		n.addLAG(spec, "utility-a", LAGConfig{})
	}
	return n
}

// addLAG certifies and links a LAG named name in group.
func (n *testNet) addLAG(name, group string, cfg LAGConfig) *lagNode {
	n.t.Helper()
	nk, err := noise.DH25519.GenerateKeypair(rand.Reader)
	if err != nil {
		n.t.Fatal(err)
	}
	pub, sk, _ := ed25519.GenerateKey(rand.Reader)
	cert, err := n.ca.IssueLAGCert(n.now, name, group, [32]byte(nk.Public), [32]byte(pub))
	if err != nil {
		n.t.Fatal(err)
	}
	cfg.Cert, cfg.NoiseKey, cfg.SignKey, cfg.CA = *cert, nk, sk, n.ca.Public()
	if cfg.TicketKey == [32]byte{} {
		cfg.TicketKey, _ = random32()
	}
	l, err := NewLAG(cfg, n.now)
	if err != nil {
		n.t.Fatal(err)
	}
	node := &lagNode{name: name, lag: l, bvs: map[ConnID]*bvConn{}}
	n.lags[name] = node
	n.link(node)
	if !l.Linked() {
		n.t.Fatalf("LAG %s did not link: %v %v", name, n.caErrs, n.events)
	}
	return node
}

func (n *testNet) link(node *lagNode) {
	first, err := node.lag.ConnectCA()
	if err != nil {
		n.t.Fatal(err)
	}
	node.caConn = n.ca.Open()
	n.deliver(hop{"lag:" + node.name, "ca", first}, func(b []byte) { n.toCA(node, b) })
	n.run()
}

// deliver passes a frame through the tap, then queues its handling.
func (n *testNet) deliver(h hop, handle func([]byte)) {
	data := h.data
	if n.tamper != nil {
		data = n.tamper(h)
		if data == nil {
			return
		}
	}
	n.captured = append(n.captured, hop{h.from, h.to, append([]byte(nil), data...)})
	n.pending = append(n.pending, func() { handle(data) })
}

// run handles queued frames until none are left, flushing LAGs when idle.
func (n *testNet) run() {
	for {
		for len(n.pending) > 0 {
			f := n.pending[0]
			n.pending = n.pending[1:]
			f()
		}
		if !n.autoFlush {
			return
		}
		flushed := false
		for _, name := range sortedKeys(n.lags) {
			node := n.lags[name]
			if node.lag.Pending() > 0 {
				n.lagOut(node, node.lag.Flush(n.now))
				flushed = true
			}
		}
		if !flushed && len(n.pending) == 0 {
			return
		}
	}
}

func sortedKeys(m map[string]*lagNode) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

func (n *testNet) toCA(node *lagNode, b []byte) {
	out, err := n.ca.Receive(n.now, node.caConn, b)
	if err != nil {
		n.caErrs = append(n.caErrs, err)
	}
	n.caOut(out)
}

func (n *testNet) caOut(out Output) {
	n.events = append(n.events, out.Events...)
	for _, f := range out.Frames {
		for _, node := range n.lags {
			if node.caConn == f.To {
				node := node
				n.deliver(hop{"ca", "lag:" + node.name, f.Data}, func(b []byte) {
					o, err := node.lag.ReceiveCA(n.now, b)
					if err != nil {
						n.caErrs = append(n.caErrs, fmt.Errorf("lag %s link: %w", node.name, err))
					}
					n.lagOut(node, o)
				})
			}
		}
	}
	for _, c := range out.Close {
		for _, node := range n.lags {
			if node.caConn == c {
				n.ca.Close(c)
				n.lagOut(node, node.lag.CADisconnected())
			}
		}
	}
}

func (n *testNet) lagOut(node *lagNode, out Output) {
	n.events = append(n.events, out.Events...)
	if n.lagEvents != nil {
		n.lagEvents(node, out.Events)
	}
	for _, e := range out.Events {
		if e.Err != nil {
			if c := node.bvs[e.Conn]; c != nil && c.lagErr == nil {
				c.lagErr = e.Err
			}
		}
	}
	for _, f := range out.Frames {
		if f.To == ToCA {
			n.deliver(hop{"lag:" + node.name, "ca", f.Data}, func(b []byte) { n.toCA(node, b) })
			continue
		}
		c := node.bvs[f.To]
		if c == nil {
			continue
		}
		n.deliver(hop{"lag:" + node.name, "bv:" + c.name, f.Data}, func(b []byte) { n.toBV(c, b) })
	}
	for _, id := range out.Close {
		if c := node.bvs[id]; c != nil {
			c.closed = true
		}
	}
}

func (n *testNet) toBV(c *bvConn, b []byte) {
	if c.raw != nil {
		c.raw(b)
		return
	}
	if c.err != nil {
		return
	}
	frames, err := c.s.Receive(n.now, b)
	if err != nil {
		c.err = err
		return
	}
	for _, f := range frames {
		n.fromBV(c, f)
	}
}

func (n *testNet) fromBV(c *bvConn, f []byte) {
	n.deliver(hop{"bv:" + c.name, "lag:" + c.lag.name, f}, func(b []byte) {
		if c.closed {
			return
		}
		out, _ := c.lag.lag.Receive(n.now, c.id, b)
		n.lagOut(c.lag, out)
	})
}

// act runs a vehicle action that produces a frame, sends it, and runs.
func (n *testNet) act(c *bvConn, action func(s *BVSession) ([]byte, error)) {
	n.t.Helper()
	f, err := action(c.s)
	if err != nil {
		n.t.Fatal(err)
	}
	if f != nil {
		n.fromBV(c, f)
	}
	n.run()
}

// enrol enrols a vehicle with k pseudonyms (a new one with a credential
// the CA issues for it, as the operator would).
func (n *testNet) enrol(b *BV, k int) {
	n.t.Helper()
	if err := n.tryEnrol(b, k, n.admit(b)); err != nil {
		n.t.Fatal(err)
	}
}

// admit returns what b enrols with: for a vehicle the CA does not know, a
// credential issued for it; an enrolled one needs none.
func (n *testNet) admit(b *BV) [32]byte {
	n.t.Helper()
	if _, known := n.ca.byReal[b.RealID]; known {
		return [32]byte{}
	}
	secret, _, err := n.ca.IssueCredential(n.now, CredentialVehicle, b.RealID)
	if err != nil {
		n.t.Fatal(err)
	}
	return secret
}

func (n *testNet) tryEnrol(b *BV, k int, token [32]byte) error {
	e, frame, err := b.Enrol(token, k)
	if err != nil {
		return err
	}
	id := n.ca.Open()
	defer n.ca.Close(id)
	for frame != nil {
		out, err := n.ca.Receive(n.now, id, frame)
		n.events = append(n.events, out.Events...)
		// pushes to LAGs
		var mine []Frame
		for _, f := range out.Frames {
			if f.To == id {
				mine = append(mine, f)
			}
		}
		other := out
		other.Frames = nil
		for _, f := range out.Frames {
			if f.To != id {
				other.Frames = append(other.Frames, f)
			}
		}
		n.caOut(other)
		n.run()
		if len(mine) == 0 {
			return err
		}
		frame = nil
		for _, f := range mine {
			nf, rerr := e.Receive(f.Data)
			if rerr != nil {
				return rerr
			}
			if nf != nil {
				frame = nf
			}
		}
	}
	if !e.Done() {
		return errors.New("enrolment did not finish")
	}
	return nil
}

// newBV creates and enrols a vehicle.
func (n *testNet) newBV(name, group string, k int) *BV {
	n.t.Helper()
	b, err := NewBV(name, group, n.ca.Public())
	if err != nil {
		n.t.Fatal(err)
	}
	n.enrol(b, k)
	return b
}

// connect opens a session of b at a LAG and runs it as far as it goes.
func (n *testNet) connect(b *BV, lag string, opts SessionOptions) *bvConn {
	n.t.Helper()
	node := n.lags[lag]
	// As a vehicle's agent does: bring the group list up to date so that
	// LSAG rings can be drawn from the whole group.
	if g, ok := n.ca.groups[b.Group]; ok && b.group != nil && b.GroupSize() < len(g.keys) && !b.group.IsRevoked(b.ringIndex) {
		if err := n.tryEnrol(b, 0, [32]byte{}); err != nil && !errors.Is(err, ErrRevoked) {
			n.t.Fatal(err)
		}
	}
	c := &bvConn{name: b.RealID, s: b.NewSession(opts), lag: node}
	id, out, err := node.lag.Open(n.now)
	if err != nil {
		n.t.Fatal(err)
	}
	c.id = id
	node.bvs[id] = c
	n.lagOut(node, out)
	n.run()
	return c
}

func (n *testNet) mustCharging(c *bvConn) {
	n.t.Helper()
	if c.s.State() != BVCharging {
		n.t.Fatalf("%s: state %s, vehicle error %v, LAG error %v", c.name, c.s.State(), c.err, c.lagErr)
	}
}

// lagView returns the LAG's view of a session.
func (n *testNet) lagView(c *bvConn) LAGSessionView {
	for _, v := range c.lag.lag.Sessions() {
		if v.ID == c.id {
			return v
		}
	}
	n.t.Fatalf("LAG has no view of session %d", c.id)
	return LAGSessionView{}
}

// bye ends a session cleanly.
func (n *testNet) bye(c *bvConn) {
	n.act(c, (*BVSession).Bye)
}

// attacker drives the vehicle side of a session by hand: it completes the
// Noise NK handshake (which needs no secret) and then sends whatever it
// likes through the channel.
type attacker struct {
	n         *testNet
	c         *bvConn
	ch        *channel
	hello     hello
	challenge [32]byte
	got       [][]byte // frames from the LAG after the handshake
}

func (n *testNet) attack(lag string, ch choice) *attacker {
	n.t.Helper()
	node := n.lags[lag]
	a := &attacker{n: n}
	a.c = &bvConn{name: "attacker", lag: node}
	var helloFrame []byte
	a.c.raw = func(b []byte) {
		switch {
		case helloFrame == nil:
			helloFrame = b
		case b[0] == frameHS2 && a.ch != nil && a.ch.enc == nil:
			p, err := a.ch.read(b[1:])
			if err != nil {
				n.t.Fatalf("attacker handshake: %v", err)
			}
			copy(a.challenge[:], p)
		case b[0] == frameData && a.ch != nil && a.ch.ready():
			if pt, err := a.ch.open(b[1:]); err == nil {
				a.got = append(a.got, pt)
			}
		}
	}
	id, out, err := node.lag.Open(n.now)
	if err != nil {
		n.t.Fatal(err)
	}
	a.c.id = id
	node.bvs[id] = a.c
	n.lagOut(node, out)
	n.run()
	if err := decode(helloFrame, &a.hello); err != nil {
		n.t.Fatal(err)
	}
	a.ch, err = newChannel(noise.HandshakeNK, true, append([]byte(prologueBVLAG), helloFrame...), staticKey{}, a.hello.Cert.NoiseKey[:])
	if err != nil {
		n.t.Fatal(err)
	}
	msg, err := a.ch.write(encode(&ch))
	if err != nil {
		n.t.Fatal(err)
	}
	n.fromBV(a.c, append([]byte{frameHS1}, msg...))
	n.run()
	return a
}

// send seals a message to the LAG and returns the LAG's first error for
// the session, if any.
func (a *attacker) send(m message) error {
	b, err := a.ch.seal(encode(m))
	if err != nil {
		a.n.t.Fatal(err)
	}
	a.n.fromBV(a.c, b)
	a.n.run()
	return a.c.lagErr
}
