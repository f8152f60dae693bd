package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/scenario"
	"github.com/gridveil/gridveil/service"
	"github.com/gridveil/gridveil/transport"
)

// coordination is a real day of the platform in this process: an embedded
// NATS server, the SO service and one EV host, as service/coord_test.go
// runs them.
type coordination struct {
	url     string
	problem *charging.Problem
	done    chan struct{}
	res     *service.SOResult
	err     error
}

// startCoordination starts the day; progress, if set, runs after every
// completed iteration in the SO's loop (blocking it blocks the SO).
func startCoordination(t *testing.T, ctx context.Context, url string, progress func(charging.Stats)) *coordination {
	t.Helper()
	sp, err := scenario.Load("ieee13-paper")
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := scenario.Build(sp, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	cfg, busEVs := p.OperatorConfig(charging.Options{})
	members := make([][]string, len(busEVs))
	for g, evs := range busEVs {
		for _, i := range evs {
			members[g] = append(members[g], "ps-"+p.EVs[i].ID)
		}
	}
	var ids []string
	for _, e := range p.EVs {
		ids = append(ids, "ps-"+e.ID)
	}
	c := &coordination{url: url, problem: p, done: make(chan struct{})}
	evConn, err := transport.Connect(url, "ev-0", 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	soConn, err := transport.Connect(url, "so", 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer evConn.Close()
		if _, err := service.RunEVHost(ctx, service.EVHostConfig{SOKey: testSOPub, Slots: p.Slots, DT: p.DT, EVs: p.EVs, Senders: ids, Conn: evConn}); err != nil && ctx.Err() == nil {
			t.Errorf("EV host: %v", err)
		}
	}()
	go func() {
		defer wg.Done()
		defer soConn.Close()
		c.res, c.err = service.RunSO(ctx, service.SOConfig{Key: testSOKey, Operator: cfg, Members: members, Conn: soConn, Resend: 200 * time.Millisecond, Progress: progress})
	}()
	go func() { wg.Wait(); close(c.done) }()
	return c
}

// TestBrowserLiveCoordination: while a real coordination runs, its
// progress reaches the page; when the event stream breaks, the browser
// reconnects and gets the whole state back; a browser that opens the page
// after the day draws the whole day.
func TestBrowserLiveCoordination(t *testing.T) {
	dir := simRun(t) // the same scenario and seed: its baseline is drawn beside the live aggregate
	bctx, problems := browser(t)

	ns, err := transport.StartServer(transport.ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	live := NewLive(nil)
	conn, err := transport.Connect(ns.ClientURL(), "dashboard", 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	unsub, err := live.Follow(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	hs := serve(t, dir, live)

	openView(t, bctx, hs.URL, "coordination")
	if err := poll(bctx, `document.getElementById('live-badge').textContent === 'live: waiting'`); err != nil {
		t.Fatalf("before the day the badge says %q: %v", eval[string](t, bctx, `document.getElementById('live-badge').textContent`), err)
	}

	// The SO stops after iteration pauseAt until the page has been checked:
	// the day is certainly still running while the page shows it.
	const pauseAt = 5
	paused, resume := make(chan struct{}), make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	co := startCoordination(t, ctx, ns.ClientURL(), func(st charging.Stats) {
		if st.Iter == pauseAt {
			close(paused)
			select {
			case <-resume:
			case <-ctx.Done():
			}
		}
	})
	defer func() { cancel(); <-co.done }()
	select {
	case <-paused:
	case <-co.done:
		t.Fatalf("the day ended before iteration %d: %v", pauseAt, co.err)
	}
	// The SO published iteration pauseAt before calling Progress; wait for
	// the server, then the page, to have it.
	if err := poll(bctx, fmt.Sprintf(`document.getElementById('live-iter').textContent === '%d'`, pauseAt)); err != nil {
		t.Fatalf("the page never showed iteration %d: %v (server state: %d updates)", pauseAt, err, live.State().Updates)
	}
	st := live.State()
	if st.Latest == nil || st.Latest.Iter != pauseAt {
		t.Fatalf("the server's state is at %+v, want iteration %d", st.Latest, pauseAt)
	}
	equalFloats(t, "live aggregate mid-day", seriesNumbers(t, bctx, "chart-live-agg", fmt.Sprintf("SO's aggregate, iteration %d", pauseAt)), st.Latest.Aggregate)
	pageHistory(t, bctx, st.History)
	screenshot(t, bctx, "coordination-live")

	// Break the stream: EventSource reconnects and the server sends the
	// whole state again, so the page keeps the day so far.
	states := eval[int](t, bctx, `gv.streamStates`)
	hs.CloseClientConnections()
	if err := poll(bctx, fmt.Sprintf(`gv.streamStates > %d`, states)); err != nil {
		t.Fatalf("the page did not reconnect: %v", err)
	}
	pageHistory(t, bctx, live.State().History)
	if got := eval[string](t, bctx, `document.getElementById('live-iter').textContent`); got != fmt.Sprint(pauseAt) {
		t.Fatalf("after the reconnect the page shows iteration %q, want %d", got, pauseAt)
	}

	close(resume)
	select {
	case <-co.done:
	case <-ctx.Done():
		t.Fatal("the day did not end")
	}
	if co.err != nil {
		t.Fatalf("SO: %v", co.err)
	}
	final := co.res.Coordinator.Operator()
	if err := poll(bctx, fmt.Sprintf(`document.getElementById('live-iter').textContent === '%d' && document.getElementById('live-converged').textContent === 'true'`, final.Iteration())); err != nil {
		lt := live.State().Latest
		t.Fatalf("the page never showed the final iteration %d: %v (it shows %q, converged %q; the server has iteration %d converged %v)", final.Iteration(), err,
			eval[string](t, bctx, `document.getElementById('live-iter').textContent`), eval[string](t, bctx, `document.getElementById('live-converged').textContent`), lt.Iter, lt.Converged)
	}
	equalFloats(t, "live aggregate at the end", seriesNumbers(t, bctx, "chart-live-agg", fmt.Sprintf("SO's aggregate, iteration %d", final.Iteration())), final.Aggregate())
	end := live.State().History
	if len(end) != final.Iteration() {
		t.Fatalf("the server kept %d iterations of a %d-iteration day", len(end), final.Iteration())
	}
	pageHistory(t, bctx, end)

	// A browser that opens the page now draws the whole day, not a blank.
	tab, cancelTab := chromedp.NewContext(bctx)
	defer cancelTab()
	openView(t, tab, hs.URL, "coordination")
	if err := poll(tab, fmt.Sprintf(`document.getElementById('live-iter').textContent === '%d'`, final.Iteration())); err != nil {
		t.Fatalf("a new page did not get the state: %v", err)
	}
	pageHistory(t, tab, end)
	equalFloats(t, "a new page's aggregate", seriesNumbers(t, tab, "chart-live-agg", fmt.Sprintf("SO's aggregate, iteration %d", final.Iteration())), final.Aggregate())

	var ignored []string
	for _, p := range problems() {
		// The stream this test broke on purpose: chromium reports the cut.
		if strings.Contains(p, "/api/v1/events") && strings.Contains(p, "ERR_") {
			ignored = append(ignored, p)
			continue
		}
		t.Errorf("browser problem: %s", p)
	}
	if len(ignored) > 0 {
		t.Logf("ignored the broken stream's report: %v", ignored)
	}
}

// pageHistory checks that the page holds exactly the server's convergence
// points.
func pageHistory(t *testing.T, ctx context.Context, want []Point) {
	t.Helper()
	s := eval[string](t, ctx, `JSON.stringify(gv.live.history)`)
	var got []Point
	if err := json.Unmarshal([]byte(s), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("the page has %d convergence points, the server %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Iter != want[i].Iter || got[i].Objective != want[i].Objective || got[i].Change != want[i].Change {
			t.Fatalf("convergence point %d: the page has %+v, the server %+v", i, got[i], want[i])
		}
	}
}
