package authnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gridveil/gridveil/auth"
)

// proxy forwards TCP connections from its own loopback port to target,
// and can cut every connection and refuse new ones (a network outage
// between a LAG and the CA) until restored.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.down {
				p.mu.Unlock()
				c.Close()
				continue
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			p.wg.Go(func() { _, _ = io.Copy(u, c); u.Close() })
			p.wg.Go(func() { _, _ = io.Copy(c, u); c.Close() })
		}
	})
	t.Cleanup(func() { ln.Close(); p.cut(); p.wg.Wait() })
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

// cut closes every forwarded connection and refuses new ones.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// events records a party's events for tests to wait on.
type events struct {
	mu  sync.Mutex
	all []string
}

func (e *events) fn(who string) EventFunc {
	return func(ev auth.Event) {
		e.mu.Lock()
		e.all = append(e.all, who+" "+ev.String())
		e.mu.Unlock()
	}
}

func (e *events) count(sub string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, s := range e.all {
		if strings.Contains(s, sub) {
			n++
		}
	}
	return n
}

func (e *events) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.all, "\n")
}

// waitFor polls cond every 10 ms, at most 2000 times.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 2000 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("gave up waiting: %s", what)
}

// caUnderTest is a CA served in this process on a fixed loopback address,
// so it can be restarted where its LAGs look for it.
type caUnderTest struct {
	srv    *CAServer
	addr   string
	cancel context.CancelFunc
	done   chan struct{}
}

func startCAAt(t *testing.T, dir, addr string, ev *events, tune func(*CAServer)) *caUnderTest {
	t.Helper()
	cs, _ := OpenStore(dir + "/ca")
	srv, err := OpenCA(cs, auth.CAConfig{AggregateMin: 2, SharedToken: true}, nil, ev.fn("ca"))
	if err != nil {
		t.Fatal(err)
	}
	if tune != nil {
		tune(srv)
	}
	var ln net.Listener
	for range 100 { // the port of a CA just stopped may take a moment
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &caUnderTest{srv: srv, addr: ln.Addr().String(), cancel: cancel, done: make(chan struct{})}
	go func() { _ = srv.Serve(ctx, ln); close(c.done) }()
	return c
}

func (c *caUnderTest) stop() { c.cancel(); <-c.done }

type lagUnderTest struct {
	srv    *LAGServer
	addr   string
	cancel context.CancelFunc
	done   chan struct{}
}

func startLAGAt(t *testing.T, dir, caAddr string, ev *events, opt func(*LAGOptions)) *lagUnderTest {
	t.Helper()
	pub, _ := ReadCAPublic(dir + "/ca/public.key")
	token, _ := ReadToken(dir + "/ca/enrol.token")
	ls, _ := OpenStore(dir + "/lag")
	o := LAGOptions{ID: "lag-1", Group: "utility-a", CAAddr: caAddr, CA: pub, Token: token, ConfirmEvery: 50 * time.Millisecond}
	if opt != nil {
		opt(&o)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := OpenLAG(ctx, ls, o, nil, ev.fn("lag"))
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	l := &lagUnderTest{srv: srv, addr: ln.Addr().String(), cancel: cancel, done: make(chan struct{})}
	go func() { _ = srv.Serve(ctx, ln); close(l.done) }()
	select {
	case <-srv.Linked():
	case <-time.After(20 * time.Second):
		t.Fatal("LAG did not link")
	}
	return l
}

func (l *lagUnderTest) stop() { l.cancel(); <-l.done }

// enrolled returns n enrolled vehicles of group utility-a (the LAG's).
func enrolled(t *testing.T, dir, caAddr string, n int) []*Vehicle {
	t.Helper()
	pub, _ := ReadCAPublic(dir + "/ca/public.key")
	token, _ := ReadToken(dir + "/ca/enrol.token")
	vs, _ := OpenStore(dir + "/bv")
	var out []*Vehicle
	for i := range n {
		v, err := OpenVehicle(vs, fmt.Sprintf("BV-%d", i), "utility-a", pub)
		if err == nil {
			err = v.Enrol(context.Background(), caAddr, token, 6)
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

// connect authenticates a vehicle at the LAG (with its ticket if resume).
func connect(v *Vehicle, lagAddr string, resume bool) (*Session, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return v.Connect(ctx, lagAddr, auth.SessionOptions{Role: auth.RoleStorage, Resume: resume, Schemes: []auth.Scheme{auth.SchemePseudonym}})
}

// served checks that the CA serves a session: a status report goes
// through the LAG to the CA and its sealed reply comes back.
func served(s *Session) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	before := s.S.View().StatusReplies
	if err := s.Send(s.S.ReportStatus(auth.StatusPeriodic, auth.Battery{SOCPermille: 500, EnergyWh: 100})); err != nil {
		return err
	}
	return s.WaitFor(ctx, func(bs *auth.BVSession) bool { return bs.View().StatusReplies > before })
}

func incidents(t *testing.T, ca *CAServer) []auth.Incident {
	var inc []auth.Incident
	_ = ca.Do(func(_ time.Time, c *auth.CA) (auth.Output, error) { inc = c.Incidents(); return auth.Output{}, nil })
	return inc
}

// TestLAGRestartLocksNoVehicleOut: vehicles connected to a LAG that
// restarts come back and are admitted, not refused as clones, whether the
// LAG stopped cleanly (it tells the CA their sessions ended) or its
// session ends were lost (they ended while its CA link was down; the CA
// reconciles when the LAG links again).
func TestLAGRestartLocksNoVehicleOut(t *testing.T) {
	dir := t.TempDir()
	ev := &events{}
	ca := startCAAt(t, dir, "127.0.0.1:0", ev, nil)
	defer ca.stop()
	px := newProxy(t, ca.addr)
	lag := startLAGAt(t, dir, px.addr(), ev, nil)
	vs := enrolled(t, dir, ca.addr, 4)
	var ss []*Session
	for _, v := range vs {
		s, err := connect(v, lag.addr, false)
		if err != nil {
			t.Fatal(err)
		}
		ss = append(ss, s)
	}
	// 1. A clean stop with the vehicles connected.
	lag.stop()
	lag = startLAGAt(t, dir, px.addr(), ev, nil)
	ss = ss[:0]
	for _, v := range vs {
		s, err := connect(v, lag.addr, false)
		if err != nil {
			t.Fatalf("after a clean LAG restart, %s: %v\n%s", v.BV.RealID, err, ev)
		}
		ss = append(ss, s)
	}
	// 2. The vehicles leave while the link is down: the CA hears nothing.
	px.cut()
	waitFor(t, "the LAG to notice the link is down", func() bool {
		var up bool
		lag.srv.Do(func(_ time.Time, l *auth.LAG) auth.Output { up = l.Linked(); return auth.Output{} })
		return !up
	})
	for _, s := range ss {
		s.Close()
	}
	lag.stop()
	px.restore()
	lag = startLAGAt(t, dir, px.addr(), ev, nil)
	defer lag.stop()
	for _, v := range vs {
		s, err := connect(v, lag.addr, false)
		if err != nil {
			t.Fatalf("after session ends were lost, %s: %v\n%s", v.BV.RealID, err, ev)
		}
		if err := served(s); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	if inc := incidents(t, ca.srv); len(inc) > 0 {
		t.Fatalf("false clone incidents: %+v", inc)
	}
}

// TestCARestartLocksNoHomeVehicleOut: home vehicles hold resumption
// tickets when the CA restarts (its sessions are gone) and the LAG stays
// up. Each comes back and is served: the LAG voids tickets whose origin
// the CA forgot, and the vehicle falls back to a full authentication
// (before, the LAG accepted the ticket and the CA terminated the session,
// at every try for 12 hours).
func TestCARestartLocksNoHomeVehicleOut(t *testing.T) {
	dir := t.TempDir()
	ev := &events{}
	ca := startCAAt(t, dir, "127.0.0.1:0", ev, nil)
	lag := startLAGAt(t, dir, ca.addr, ev, nil)
	defer lag.stop()
	vs := enrolled(t, dir, ca.addr, 4)
	for _, v := range vs {
		s, err := connect(v, lag.addr, true)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if !v.BV.HasTicket("lag-1") {
			t.Fatalf("%s got no ticket", v.BV.RealID)
		}
	}
	ca.stop()
	ca = startCAAt(t, dir, ca.addr, ev, nil)
	defer ca.stop()
	// Wait for the LAG's side of the re-link: its sync with the new CA
	// instance, where it voids the forgotten origins. The CA's
	// "lag-linked" comes first, and a vehicle that resumed in between was
	// admitted on its old ticket (the race made this test fail under
	// load; see the closing note for the window itself).
	waitFor(t, "the LAG to learn that the CA restarted", func() bool { return ev.count("ca-restarted") > 0 })
	for round := range 2 {
		for _, v := range vs {
			s, err := connect(v, lag.addr, true)
			if err != nil {
				t.Fatalf("round %d, %s after the CA restarted: %v\n%s", round, v.BV.RealID, err, ev)
			}
			if err := served(s); err != nil {
				t.Fatalf("round %d, %s after the CA restarted (resumed %v): %v\n%s", round, v.BV.RealID, s.S.View().Resumed, err, ev)
			}
			// The second round resumes with the ticket of the first.
			if round == 1 && !s.S.View().Resumed {
				t.Fatalf("%s did not resume after a full authentication", v.BV.RealID)
			}
			s.Close()
		}
	}
}

// TestRevokedDuringLinkOutage: while the LAG cannot reach the CA it admits
// home vehicles by ticket on its last revocation list (full
// authentications wait for the CA). A vehicle revoked meanwhile is ended
// once the link is back and the LAG has the new list; an innocent one
// resumed during the outage stays and is served.
func TestRevokedDuringLinkOutage(t *testing.T) {
	dir := t.TempDir()
	ev := &events{}
	ca := startCAAt(t, dir, "127.0.0.1:0", ev, nil)
	defer ca.stop()
	px := newProxy(t, ca.addr)
	lag := startLAGAt(t, dir, px.addr(), ev, nil)
	defer lag.stop()
	vs := enrolled(t, dir, ca.addr, 2)
	for _, v := range vs {
		s, err := connect(v, lag.addr, true)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	px.cut()
	waitFor(t, "the LAG to notice the link is down", func() bool {
		var up bool
		lag.srv.Do(func(_ time.Time, l *auth.LAG) auth.Output { up = l.Linked(); return auth.Output{} })
		return !up
	})
	if err := ca.srv.Do(func(now time.Time, c *auth.CA) (auth.Output, error) { return c.RevokeBV(now, "BV-0") }); err != nil {
		t.Fatal(err)
	}
	revoked, err := connect(vs[0], lag.addr, true)
	if err != nil {
		t.Fatalf("the LAG refused a ticket during the outage: %v", err)
	}
	innocent, err := connect(vs[1], lag.addr, true)
	if err != nil {
		t.Fatalf("the LAG refused a ticket during the outage: %v", err)
	}
	px.restore()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = revoked.WaitFor(ctx, func(*auth.BVSession) bool { return false })
	if !errors.Is(err, auth.ErrRevoked) {
		t.Fatalf("the revoked vehicle's session after the link came back: %v\n%s", err, ev)
	}
	if err := served(innocent); err != nil {
		t.Fatalf("the innocent vehicle resumed during the outage: %v\n%s", err, ev)
	}
	innocent.Close()
}

// TestKeepalives: a vehicle that sends nothing but keepalives for several
// idle timeouts is still connected and served, and so is the LAG's link to
// the CA (linked once); without keepalives the LAG drops the vehicle.
func TestKeepalives(t *testing.T) {
	dir := t.TempDir()
	ev := &events{}
	const idle = time.Second
	ca := startCAAt(t, dir, "127.0.0.1:0", ev, func(s *CAServer) { s.IdleTimeout = idle })
	defer ca.stop()
	lag := startLAGAt(t, dir, ca.addr, ev, func(o *LAGOptions) { o.IdleTimeout, o.KeepaliveEvery = idle, idle/10 })
	defer lag.stop()
	vs := enrolled(t, dir, ca.addr, 2)
	vs[0].KeepaliveEvery = idle / 10
	vs[1].KeepaliveEvery = time.Hour
	alive, err := connect(vs[0], lag.addr, false)
	if err != nil {
		t.Fatal(err)
	}
	defer alive.Close()
	silent, err := connect(vs[1], lag.addr, false)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// The silent vehicle is dropped after one idle timeout; by then the
	// other has been idle (keepalives aside) as long.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := silent.WaitFor(ctx, func(*auth.BVSession) bool { return false }); !errors.Is(err, ErrClosed) {
		t.Fatalf("a vehicle without keepalives: %v", err)
	}
	time.Sleep(2 * idle)
	if err := served(alive); err != nil {
		t.Fatalf("a vehicle with keepalives, after idle timeouts: %v", err)
	}
	if n := ev.count("lag-linked"); n != 1 {
		t.Fatalf("the LAG linked %d times: its idle link was cut\n%s", n, ev)
	}
}
