package service

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/scenario"
	"github.com/gridveil/gridveil/transport"
)

func problem(t *testing.T, name string) *charging.Problem {
	t.Helper()
	sp, err := scenario.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := scenario.Build(sp, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// soConfig is what the SO knows of p, with each vehicle's pseudonym
// derived from its id.
func soConfig(p *charging.Problem) (charging.OperatorConfig, [][]string) {
	cfg, busEVs := p.OperatorConfig(charging.Options{})
	members := make([][]string, len(busEVs))
	for g, evs := range busEVs {
		for _, i := range evs {
			members[g] = append(members[g], "ps-"+p.EVs[i].ID)
		}
	}
	return cfg, members
}

// startNATS starts an embedded NATS server on loopback for one test.
func startNATS(t *testing.T) *transport.Server {
	t.Helper()
	srv, err := transport.StartServer(transport.ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// connect connects a party to the test's bus and closes it at the end.
func connect(t *testing.T, url, name string, log *slog.Logger) *transport.Conn {
	t.Helper()
	c, err := transport.Connect(url, name, 5*time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// pseudonyms are the session names of p's vehicles in these tests.
func pseudonyms(p *charging.Problem) []string {
	ids := make([]string, len(p.EVs))
	for i := range p.EVs {
		ids[i] = "ps-" + p.EVs[i].ID
	}
	return ids
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

// day runs the SO and hosts EV processes' worth of vehicles (split
// round-robin) over NATS at url. during, if set, runs once the SO has
// completed the iteration given, in the test's goroutine.
type dayRun struct {
	so     *SOResult
	scheds [][]float64 // per EV of the problem
	soErr  error
}

func runDay(t *testing.T, ctx context.Context, p *charging.Problem, urls string, hosts int, stateFile string, progress func(charging.Stats)) dayRun {
	t.Helper()
	return runDayWith(t, ctx, p, urls, hosts, stateFile, progress, dayOpts{})
}

// dayOpts are runDayWith's options: masking, if set, is the privacy
// mechanism; log, if set, receives every party's log.
type dayOpts struct {
	masking *MaskingConfig
	log     *slog.Logger
}

// runDayWith is runDay with options.
func runDayWith(t *testing.T, ctx context.Context, p *charging.Problem, urls string, hosts int, stateFile string, progress func(charging.Stats), o dayOpts) dayRun {
	t.Helper()
	masking := o.masking
	partyLog := o.log
	if partyLog == nil {
		partyLog = testLog(t)
	}
	cfg, members := soConfig(p)
	var wg sync.WaitGroup
	out := dayRun{scheds: make([][]float64, len(p.EVs))}
	var mu sync.Mutex
	for h := 0; h < hosts; h++ {
		var evs []charging.EV
		var ids []string
		var which []int
		for i := h; i < len(p.EVs); i += hosts {
			evs = append(evs, p.EVs[i])
			ids = append(ids, "ps-"+p.EVs[i].ID)
			which = append(which, i)
		}
		conn, err := transport.Connect(urls, fmt.Sprintf("ev-%d", h), 10*time.Second, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			res, err := RunEVHost(ctx, EVHostConfig{SOKey: testSOPub, Slots: p.Slots, DT: p.DT, EVs: evs, Senders: ids, Conn: conn, Log: partyLog, Masking: masking != nil})
			if err != nil {
				t.Errorf("EV host %d: %v", h, err)
				return
			}
			mu.Lock()
			for k, i := range which {
				out.scheds[i] = res.Schedules[k]
			}
			mu.Unlock()
		}()
	}
	conn, err := transport.Connect(urls, "so", 10*time.Second, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	out.so, out.soErr = RunSO(ctx, SOConfig{Key: testSOKey, Operator: cfg, Members: members, Conn: conn, StateFile: stateFile, Resend: 200 * time.Millisecond, Log: partyLog, Progress: progress, Masking: masking})
	if out.soErr == nil {
		wg.Wait()
	}
	return out
}

func checkAgainstSolve(t *testing.T, p *charging.Problem, d dayRun) {
	t.Helper()
	if d.soErr != nil {
		t.Fatal(d.soErr)
	}
	want, err := charging.Solve(p, charging.Options{})
	if err != nil {
		t.Fatal(err)
	}
	op := d.so.Coordinator.Operator()
	if !op.Converged() {
		t.Fatalf("SO ended without a certified optimum after %d iterations", op.Iteration())
	}
	agg := p.Baseline()
	for i, x := range d.scheds {
		if x == nil {
			t.Fatalf("EV %d never reported its final schedule", i)
		}
		for tt, v := range x {
			agg[tt] += v
		}
	}
	worst := 0.0
	for tt := range agg {
		worst = math.Max(worst, math.Abs(agg[tt]-want.Aggregate[tt]))
	}
	t.Logf("%d iterations (in-process %d), aggregate from the vehicles' schedules within %.2g kW of Solve's; %d rounds re-sent", op.Iteration(), want.Iterations, worst, d.so.Resent)
	if worst > 1e-6 {
		t.Fatalf("aggregate over NATS off the in-process solver's by %g kW", worst)
	}
}

// TestCoordinationOverNATS runs the SO and three EV hosts as separate
// parties over an embedded NATS server on loopback: the day converges to
// the in-process solver's aggregate within 1e-6 kW.
func TestCoordinationOverNATS(t *testing.T) {
	srv := startNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := problem(t, "ieee13-paper")
	checkAgainstSolve(t, p, runDay(t, ctx, p, srv.ClientURL(), 3, "", nil))
}

// TestCoordinationSurvivesNATSRestart stops the NATS server in the middle
// of the day and starts it again on the same port: every party
// reconnects, the SO re-sends the round in flight, and the day completes
// with the in-process result.
func TestCoordinationSurvivesNATSRestart(t *testing.T) {
	port := freePort(t)
	srv, err := transport.StartServer(transport.ServerConfig{Port: port})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	restarted := make(chan struct{})
	progress := func(st charging.Stats) {
		if st.Iter == 5 {
			once.Do(func() {
				srv.Shutdown()
				go func() {
					defer close(restarted)
					time.Sleep(300 * time.Millisecond)
					s2, err := transport.StartServer(transport.ServerConfig{Port: port})
					if err != nil {
						t.Errorf("restarting NATS: %v", err)
						return
					}
					srv = s2
				}()
			})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := problem(t, "ieee13-paper")
	d := runDay(t, ctx, p, fmt.Sprintf("nats://127.0.0.1:%d", port), 2, "", progress)
	<-restarted // the outage happened mid-day: at iteration 5 of 28
	defer srv.Shutdown()
	checkAgainstSolve(t, p, d)
}

// TestSOResumesFromState stops the SO mid-day (its context ends, as a
// crash would stop it, with the state file written after each round) and
// starts a new SO on the same state file: it resumes at the saved round,
// not at the start, and the day ends with the in-process result.
func TestSOResumesFromState(t *testing.T) {
	srv := startNATS(t)
	p := problem(t, "ieee13-paper")
	state := filepath.Join(t.TempDir(), "so.state")
	cfg, members := soConfig(p)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The vehicles, in one host that lives through the SO's restart.
	hostConn := connect(t, srv.ClientURL(), "ev", testLog(t))
	ids := pseudonyms(p)
	hostDone := make(chan *EVHostResult, 1)
	go func() {
		res, err := RunEVHost(ctx, EVHostConfig{SOKey: testSOPub, Slots: p.Slots, DT: p.DT, EVs: p.EVs, Senders: ids, Conn: hostConn, Log: testLog(t)})
		if err != nil {
			t.Errorf("EV host: %v", err)
		}
		hostDone <- res
	}()
	soConn := connect(t, srv.ClientURL(), "so", testLog(t))
	crashCtx, crash := context.WithCancel(ctx)
	_, err := RunSO(crashCtx, SOConfig{Key: testSOKey, Operator: cfg, Members: members, Conn: soConn, StateFile: state, Resend: 200 * time.Millisecond, Log: testLog(t),
		Progress: func(st charging.Stats) {
			if st.Iter == 10 {
				crash()
			}
		}})
	if err == nil {
		t.Fatal("the first SO finished before the crash")
	}
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("no state file after 10 iterations: %v", err)
	}
	var firstResumed int
	res, err := RunSO(ctx, SOConfig{Key: testSOKey, Operator: cfg, Members: members, Conn: soConn, StateFile: state, Resend: 200 * time.Millisecond, Log: testLog(t),
		Progress: func(st charging.Stats) {
			if firstResumed == 0 {
				firstResumed = st.Iter
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || firstResumed < 11 {
		t.Fatalf("the restarted SO did not resume: resumed %v, first iteration it completed %d", res.Resumed, firstResumed)
	}
	h := <-hostDone
	if h == nil {
		t.Fatal("EV host failed")
	}
	checkAgainstSolve(t, p, dayRun{so: res, scheds: h.Schedules})
}

// TestSORefusesMalformed sends the SO garbage, oversized, forged and
// replayed messages on report subjects while a day runs: each is refused
// with its reason, and the day completes with the in-process result.
func TestSORefusesMalformed(t *testing.T) {
	srv := startNATS(t)
	p := problem(t, "ieee13-paper")
	evil := connect(t, srv.ClientURL(), "evil", nil)
	b := p.EVs[0].Bus
	subj := transport.CoordReport(0, b)
	var once sync.Once
	progress := func(st charging.Stats) {
		if st.Iter != 3 {
			return
		}
		once.Do(func() {
			stranger, _ := (&charging.Report{Round: 4, Iter: 3, Phase: charging.PhaseStep, Feeder: 0, Bus: b, Sender: "not-a-member", Values: make([]float64, p.Slots)}).MarshalBinary()
			replay, _ := (&charging.Report{Round: 0, Iter: -1, Phase: charging.PhaseStart, Feeder: 0, Bus: b, Sender: "ps-" + p.EVs[0].ID, Values: make([]float64, p.Slots)}).MarshalBinary()
			for _, m := range []struct {
				subj string
				data []byte
			}{
				{subj, []byte("garbage")},
				{subj, make([]byte, charging.MaxMessageSize+10)},
				{subj, stranger},
				{subj, replay},
				{"gridveil.v1.coord.f0.b999.report", stranger},
				{"gridveil.v1.coord.fx.report", stranger},
			} {
				if err := evil.Publish(m.subj, m.data); err != nil {
					t.Error(err)
				}
			}
			// At the server before the SO sends the next round, so they
			// reach it while the day still runs.
			if err := evil.Flush(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := runDay(t, ctx, p, srv.ClientURL(), 2, "", progress)
	checkAgainstSolve(t, p, d)
	t.Logf("refused: %v", d.so.Refused)
	for _, reason := range []string{"malformed", "unknown sender", "stale", "no such bus"} {
		if d.so.Refused[reason] == 0 {
			t.Errorf("nothing refused as %q: %v", reason, d.so.Refused)
		}
	}
}

// TestCoordinationOnNATSCluster runs the day on a three-node NATS cluster
// on loopback (three servers with routes: NATS clustering, nothing of
// gridveil's): the SO connects to node 0, the EV hosts to nodes 1 and 2,
// each client knowing every node. Node 1 is shut down in the middle of the
// day; its clients fail over to the others and the day completes with the
// in-process result.
func TestCoordinationOnNATSCluster(t *testing.T) {
	seed, err := transport.StartServer(transport.ServerConfig{Name: "n0", Cluster: "gridveil-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer seed.Shutdown()
	nodes := []*transport.Server{seed}
	for i := 1; i < 3; i++ {
		n, err := transport.StartServer(transport.ServerConfig{Name: fmt.Sprintf("n%d", i), Cluster: "gridveil-test", Routes: []string{seed.ClusterURL()}})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Shutdown()
		nodes = append(nodes, n)
	}
	// Wait (bounded) until the full mesh has formed: each node routes to
	// the two others.
	for i := 0; ; i++ {
		if nodes[0].Routes() >= 2 && nodes[1].Routes() >= 2 && nodes[2].Routes() >= 2 {
			break
		}
		if i > 500 {
			t.Fatalf("cluster did not form: routes %d %d %d", nodes[0].Routes(), nodes[1].Routes(), nodes[2].Routes())
		}
		time.Sleep(20 * time.Millisecond)
	}
	all := func(first int) string {
		urls := []string{nodes[first].ClientURL()}
		for i, n := range nodes {
			if i != first {
				urls = append(urls, n.ClientURL())
			}
		}
		return strings.Join(urls, ",")
	}
	p := problem(t, "ieee13-paper")
	cfg, members := soConfig(p)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	scheds := make([][]float64, len(p.EVs))
	var reconnects [3]int64
	var conns [3]*transport.Conn
	for h := 0; h < 2; h++ {
		var evs []charging.EV
		var ids []string
		var which []int
		for i := h; i < len(p.EVs); i += 2 {
			evs, ids, which = append(evs, p.EVs[i]), append(ids, "ps-"+p.EVs[i].ID), append(which, i)
		}
		// nats.go shuffles the server list unless told not to; the
		// first URL is where we want each host, so that killing node 1
		// is sure to cut one host off.
		conn, err := transport.ConnectOrdered(all(h+1), fmt.Sprintf("ev-%d", h), 10*time.Second, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		conns[h+1] = conn
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			res, err := RunEVHost(ctx, EVHostConfig{SOKey: testSOPub, Slots: p.Slots, DT: p.DT, EVs: evs, Senders: ids, Conn: conn, Log: testLog(t)})
			if err != nil {
				t.Errorf("EV host %d: %v", h, err)
				return
			}
			for k, i := range which {
				scheds[i] = res.Schedules[k]
			}
		}()
	}
	soConn, err := transport.ConnectOrdered(all(0), "so", 10*time.Second, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer soConn.Close()
	conns[0] = soConn
	var once sync.Once
	res, err := RunSO(ctx, SOConfig{Key: testSOKey, Operator: cfg, Members: members, Conn: soConn, Resend: 200 * time.Millisecond, Log: testLog(t),
		Progress: func(st charging.Stats) {
			if st.Iter == 5 {
				once.Do(func() { nodes[1].Shutdown() })
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, c := range conns {
		reconnects[i] = c.Reconnects.Load()
	}
	if reconnects[1] == 0 {
		t.Errorf("the host on the killed node never reconnected (reconnects %v): the failover was not exercised", reconnects)
	}
	checkAgainstSolve(t, p, dayRun{so: res, scheds: scheds})
}

// TestSOMetrics scrapes the SO's /metrics endpoint after a day: the
// counters agree with what the coordinator did and what it refused.
func TestSOMetrics(t *testing.T) {
	srv := startNATS(t)
	p := problem(t, "ieee13-paper")
	cfg, members := soConfig(p)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ids := pseudonyms(p)
	hc := connect(t, srv.ClientURL(), "ev", nil)
	go func() {
		_, _ = RunEVHost(ctx, EVHostConfig{SOKey: testSOPub, Slots: p.Slots, DT: p.DT, EVs: p.EVs, Senders: ids, Conn: hc})
	}()
	sc := connect(t, srv.ClientURL(), "so", nil)
	met := NewMetrics("so", sc)
	addr, err := ServeMetrics(ctx, "127.0.0.1:0", met, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	// One stranger's report, which must show as a refusal.
	stranger, _ := (&charging.Report{Round: 0, Iter: -1, Phase: charging.PhaseStart, Feeder: 0, Bus: p.EVs[0].Bus, Sender: "stranger", Values: make([]float64, p.Slots)}).MarshalBinary()
	res, err := RunSO(ctx, SOConfig{Key: testSOKey, Operator: cfg, Members: members, Conn: sc, Resend: 200 * time.Millisecond, Metrics: met, Log: testLog(t),
		Progress: func(st charging.Stats) {
			if st.Iter == 2 {
				if err := hc.Publish(transport.CoordReport(0, p.EVs[0].Bus), stranger); err != nil {
					t.Error(err)
				}
				if err := hc.Flush(context.Background()); err != nil {
					t.Error(err)
				}
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	op := res.Coordinator.Operator()
	for _, want := range []string{
		fmt.Sprintf(`gridveil_coord_iterations_total{role="so"} %d`, op.Iteration()),
		fmt.Sprintf(`gridveil_coord_rounds_total{role="so"} %d`, res.Coordinator.Round()),
		`gridveil_messages_refused_total{reason="unknown sender",role="so"} 1`,
		`gridveil_nats_messages_received_total{role="so"}`,
		`gridveil_coord_round_seconds_count{role="so"}`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		for _, l := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(l, "gridveil_") {
				t.Log(l)
			}
		}
	}
	if res.Refused["unknown sender"] != 1 {
		t.Errorf("the stranger's report was refused %d times, want once", res.Refused["unknown sender"])
	}
}

// testSOPub and testSOKey are the SO's signing key pair in these tests.
var testSOPub, testSOKey = func() (ed25519.PublicKey, ed25519.PrivateKey) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return pub, key
}()

// TestHostsRefuseForgedBroadcasts publishes, in the middle of the day,
// broadcasts and a drop notice signed by another key and an unsigned
// broadcast on every bus: a forged end of the day, a forged step with a
// price that would push every vehicle out of the evening, a forged drop.
// The vehicles follow none of them, and the day ends with the in-process
// result.
func TestHostsRefuseForgedBroadcasts(t *testing.T) {
	srv := startNATS(t)
	p := problem(t, "ieee13-paper")
	cfg, members := soConfig(p)
	_, evilKey, _ := ed25519.GenerateKey(rand.Reader)
	evil := connect(t, srv.ClientURL(), "evil", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ids := pseudonyms(p)
	hc := connect(t, srv.ClientURL(), "ev", nil)
	hostRes := make(chan *EVHostResult, 1)
	go func() {
		r, err := RunEVHost(ctx, EVHostConfig{SOKey: testSOPub, Slots: p.Slots, DT: p.DT, EVs: p.EVs, Senders: ids, Conn: hc, Log: testLog(t)})
		if err != nil {
			t.Error(err)
		}
		hostRes <- r
	}()
	sc := connect(t, srv.ClientURL(), "so", nil)
	var once sync.Once
	res, err := RunSO(ctx, SOConfig{Key: testSOKey, Operator: cfg, Members: members, Conn: sc, Resend: 200 * time.Millisecond, Log: testLog(t),
		Progress: func(st charging.Stats) {
			if st.Iter != 5 {
				return
			}
			once.Do(func() {
				for g, b := range cfg.Buses {
					huge := make([]float64, p.Slots)
					for tt := range huge {
						huge[tt] = 1e6
					}
					for _, m := range []*charging.Broadcast{
						{Round: 1 << 20, Iter: 99, Phase: charging.PhaseDone, Feeder: b.Feeder, Bus: b.Bus},
						{Round: 1 << 20, Iter: 99, Phase: charging.PhaseStep, Feeder: b.Feeder, Bus: b.Bus, Tau: 1, Aggregate: huge, Price: huge},
					} {
						data, _ := charging.SealBroadcast(m, evilKey)
						plain, _ := m.MarshalBinary()
						_ = evil.Publish(transport.CoordBroadcast(b.Feeder, b.Bus), data)
						_ = evil.Publish(transport.CoordBroadcast(b.Feeder, b.Bus), plain)
					}
					d := charging.Dropped{Feeder: b.Feeder, Bus: b.Bus, Sender: members[g][0], Kept: 0}
					data, _ := charging.SealDropped(&d, evilKey)
					_ = evil.Publish(transport.CoordDropped(b.Feeder, b.Bus), data)
				}
				if err := evil.Flush(context.Background()); err != nil {
					t.Error(err)
				}
			})
		}})
	if err != nil {
		t.Fatal(err)
	}
	h := <-hostRes
	if h == nil {
		t.Fatal("the EV host failed")
	}
	if h.Forged != 4*len(cfg.Buses) || len(h.Dropped) != 0 {
		t.Errorf("%d broadcasts refused as forged (want %d), %d vehicles dropped (want 0)", h.Forged, 4*len(cfg.Buses), len(h.Dropped))
	}
	checkAgainstSolve(t, p, dayRun{so: res, scheds: h.Schedules})
}
