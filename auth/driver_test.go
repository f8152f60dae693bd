package auth

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/flynn/noise"
)

// lagDriver drives one LAG from several goroutines the way
// authnet.LAGServer does: a frame's Step runs outside the lock, Begin and
// Finish under it; a batch is verified in parts outside the lock. With one
// worker it calls Receive and Flush, the sequential API.
type lagDriver struct {
	mu      sync.Mutex
	l       *LAG
	workers int
}

// receiveAll hands frames[i] to session ids[i], for every i, on the
// driver's workers, and returns each frame's output and error.
func (d *lagDriver) receiveAll(now time.Time, ids []ConnID, frames [][]byte) ([]Output, []error) {
	outs, errs := make([]Output, len(ids)), make([]error, len(ids))
	if d.workers <= 1 {
		for i, id := range ids {
			outs[i], errs[i] = d.l.Receive(now, id, frames[i])
		}
		return outs, errs
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range d.workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(ids); i = int(next.Add(1) - 1) {
				d.mu.Lock()
				st := d.l.Begin(now, ids[i], frames[i])
				d.mu.Unlock()
				st.Run()
				d.mu.Lock()
				outs[i], errs[i] = d.l.Finish(st)
				d.mu.Unlock()
			}
		})
	}
	wg.Wait()
	return outs, errs
}

// flush verifies the gathered requests, in parts on the workers.
func (d *lagDriver) flush(now time.Time) Output {
	if d.workers <= 1 {
		return d.l.Flush(now)
	}
	d.mu.Lock()
	b := d.l.TakeBatch()
	d.mu.Unlock()
	var wg sync.WaitGroup
	for i := range d.workers {
		wg.Go(func() { b.VerifyPart(i, d.workers) })
	}
	wg.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.l.ApplyBatch(now, b)
}

// phasedVehicle is the vehicle's side of a session: a BVSession, or a
// forger that drives the channel by hand.
type phasedVehicle interface {
	Receive(now time.Time, frame []byte) ([][]byte, error)
}

// forger completes the Noise handshake (which needs no secret) and then
// authenticates with a genuine pseudonym certificate it does not hold the
// key of: the session signature is made with another key.
type forger struct {
	cert  []byte
	wrong ed25519.PrivateKey
	lagID string
	ch    *channel
}

func (f *forger) Receive(now time.Time, frame []byte) ([][]byte, error) {
	switch frame[0] {
	case frameHello:
		var h hello
		if err := decode(frame, &h); err != nil {
			return nil, err
		}
		ch, err := newChannel(noise.HandshakeNK, true, append([]byte(prologueBVLAG), frame...), staticKey{}, h.Cert.NoiseKey[:])
		if err != nil {
			return nil, err
		}
		f.ch = ch
		m, err := ch.write(encode(&choice{Version: ProtocolVersion, Scheme: SchemePseudonym}))
		return [][]byte{append([]byte{frameHS1}, m...)}, err
	case frameHS2:
		p, err := f.ch.read(frame[1:])
		if err != nil {
			return nil, err
		}
		stmt := authStatement(f.ch.binding, [32]byte(p), f.lagID, SchemePseudonym, RoleLoad, 0, f.cert)
		b, err := f.ch.seal(encode(&authReq{Scheme: SchemePseudonym, Role: RoleLoad, Cred: f.cert, Sig: ed25519.Sign(f.wrong, stmt)}))
		return [][]byte{b}, err
	}
	return nil, fmt.Errorf("forger: frame %d", frame[0])
}

// admission is what admitPhased measured and what each vehicle got.
type admission struct {
	lagTime time.Duration    // wall time of the LAG's phases, all of them
	lagCPU  time.Duration    // the process's CPU time (user and system) in them
	lagGCs  uint64           // garbage collections that ran during them
	phases  [6]time.Duration // hello and handshake, requests, batch, permits, grants, confirmation
	errs    []error          // per vehicle: the LAG's error for its session
	ids     []ConnID
	frames  int // frames the LAG sent to vehicles
}

// admitPhased admits one session of each vehicle at one LAG, in phases:
// the LAG's work for every vehicle (timed), then every vehicle's or the
// CA's answer (not timed), and so on: hello, first handshake message,
// authentication request, batch verification, the CA's verdicts, the
// permit, the vehicle's grant, the batch confirmation. The LAG's phases
// run on d.workers goroutines; lagTime is their wall time, so the
// vehicles' and the CA's work, which run elsewhere in reality, is not in
// it. A benchmark's timer must be stopped on entry: it runs during the
// LAG's phases only.
func admitPhased(tb testing.TB, n *testNet, node *lagNode, d *lagDriver, vs []phasedVehicle) admission {
	tb.Helper()
	a := admission{errs: make([]error, len(vs)), ids: make([]ConnID, len(vs))}
	alive := make([]bool, len(vs))
	bench, _ := tb.(*testing.B) // its timer runs during the LAG's phases only
	timed := func(phase int, f func()) {
		if bench != nil {
			bench.StartTimer()
		}
		c, g := cpuTime(), gcCycles()
		t := time.Now()
		// The label lets a CPU profile show the LAG's phases alone:
		// go tool pprof -tagfocus phase=lag.
		pprof.Do(context.Background(), pprof.Labels("phase", "lag"), func(context.Context) { f() })
		e := time.Since(t)
		a.lagCPU += cpuTime() - c
		a.lagGCs += gcCycles() - g
		if bench != nil {
			bench.StopTimer()
		}
		a.phases[phase] += e
		a.lagTime += e
	}
	// toVehicles hands each live vehicle the LAG's frames for it and
	// collects what it answers; a LAG error or a vehicle error ends it.
	next := make([][]byte, len(vs))
	toVehicles := func(outs []Output, errs []error) {
		byID := map[ConnID]int{}
		for i, id := range a.ids {
			if alive[i] {
				byID[id] = i
			}
		}
		for i := range next {
			next[i] = nil
		}
		var all []Frame
		for k, o := range outs {
			if errs != nil && errs[k] != nil {
				continue
			}
			all = append(all, o.Frames...)
		}
		for _, f := range all {
			i, ok := byID[f.To]
			if !ok || !alive[i] {
				continue
			}
			a.frames++
			fs, err := vs[i].Receive(n.now, f.Data)
			if err != nil {
				tb.Fatalf("vehicle %d: %v", i, err)
			}
			if len(fs) > 0 {
				next[i] = fs[0]
			}
		}
	}
	// lagRound gives the LAG every live vehicle's pending frame.
	lagRound := func(phase int) {
		var ids []ConnID
		var frames [][]byte
		var idx []int
		for i := range vs {
			if alive[i] && next[i] != nil {
				ids, frames, idx = append(ids, a.ids[i]), append(frames, next[i]), append(idx, i)
			}
		}
		var outs []Output
		var errs []error
		timed(phase, func() { outs, errs = d.receiveAll(n.now, ids, frames) })
		for k, i := range idx {
			if errs[k] != nil {
				a.errs[i], alive[i] = errs[k], false
			}
		}
		toVehicles(outs, errs)
	}
	// noteRejects records the sessions an output refused.
	noteRejects := func(out Output) {
		for _, e := range out.Events {
			if e.Err == nil {
				continue
			}
			for i, id := range a.ids {
				if id == e.Conn && alive[i] {
					a.errs[i], alive[i] = e.Err, false
				}
			}
		}
	}

	var hellos []Output
	timed(0, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		for i := range vs {
			id, out, err := d.l.Open(n.now)
			if err != nil {
				tb.Fatal(err)
			}
			a.ids[i], alive[i] = id, true
			hellos = append(hellos, out)
		}
	})
	toVehicles(hellos, nil)
	lagRound(0) // first handshake message -> second, with the challenge
	lagRound(1) // authentication requests, queued
	var flushed Output
	timed(2, func() { flushed = d.flush(n.now) })
	noteRejects(flushed)
	// The CA answers each verification message (not timed).
	var verdicts []Frame
	for _, f := range flushed.Frames {
		if f.To != ToCA {
			continue // a refused session's reject frame
		}
		co, err := n.ca.Receive(n.now, node.caConn, f.Data)
		if err != nil {
			tb.Fatal(err)
		}
		verdicts = append(verdicts, co.Frames...)
	}
	var permits []Output
	timed(3, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, f := range verdicts {
			out, err := d.l.ReceiveCA(n.now, f.Data)
			if err != nil {
				tb.Fatal(err)
			}
			permits = append(permits, out)
		}
	})
	for _, o := range permits {
		noteRejects(o)
	}
	toVehicles(permits, nil)
	lagRound(4) // grants: access granted, sessions active
	var confirm Output
	timed(5, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		confirm = d.l.ConfirmBatch(n.now)
	})
	toVehicles([]Output{confirm}, nil)
	return a
}

// closeAll ends the sessions at the LAG, and tells the CA (not timed).
func closeAll(n *testNet, node *lagNode, ids []ConnID) {
	for _, id := range ids {
		n.lagOut(node, node.lag.Close(id))
	}
	n.run()
}

// workersFor is the number of LAG goroutines for a benchmark run: one per
// P, as the LAG server's goroutines would use them.
func workersFor() int { return runtime.GOMAXPROCS(0) }

// cpuTime is the CPU time the process has used, user and system: during
// the LAG's phases only the LAG works (and the runtime, for it), so the
// difference is the LAG's CPU time, which other jobs on a shared machine
// disturb less than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// gcCycles is the number of garbage collections completed so far: the
// benchmark's process holds every vehicle's state, which a collection
// inside the LAG's phases would make the LAG pay for.
func gcCycles() uint64 {
	m := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(m)
	return m[0].Value.Uint64()
}
