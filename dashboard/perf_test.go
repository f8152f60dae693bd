package dashboard

import (
	"context"
	"encoding/json"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/scenario"
	"github.com/gridveil/gridveil/service"
	"github.com/gridveil/gridveil/transport"
)

// TestPerfFollow measures what following a 10^4-vehicle coordination costs
// the browser: bytes per second on the event stream and the page's frame
// times while the day runs. It prints figures and asserts nothing about
// time (docs/PERFORMANCE.md has them with this command):
//
//	GRIDVEIL_PERF=1 go test ./dashboard -run TestPerfFollow -v -count=1
func TestPerfFollow(t *testing.T) {
	if os.Getenv("GRIDVEIL_PERF") != "1" {
		t.Skip("a measurement: GRIDVEIL_PERF=1 go test ./dashboard -run TestPerfFollow -v")
	}
	const evs = 10000
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
	hs := serve(t, "", live)
	openView(t, bctx, hs.URL, "coordination")
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[any](`gvStartFrameMeter()`)); err != nil {
		t.Fatal(err)
	}

	sp, err := scenario.Load("ieee13-paper")
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := scenario.Build(sp, 1, evs)
	if err != nil {
		t.Fatal(err)
	}
	cfg, busEVs := p.OperatorConfig(charging.Options{})
	members := make([][]string, len(busEVs))
	for g, ix := range busEVs {
		for _, i := range ix {
			members[g] = append(members[g], "ps-"+p.EVs[i].ID)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	hostDone := make(chan struct{})
	go func() {
		defer close(hostDone)
		c, err := transport.Connect(ns.ClientURL(), "ev-0", 10*time.Second, nil)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		var ids []string
		for _, e := range p.EVs {
			ids = append(ids, "ps-"+e.ID)
		}
		if _, err := service.RunEVHost(ctx, service.EVHostConfig{SOKey: testSOPub, Slots: p.Slots, DT: p.DT, EVs: p.EVs, Senders: ids, Conn: c}); err != nil && ctx.Err() == nil {
			t.Error(err)
		}
	}()
	soConn, err := transport.Connect(ns.ClientURL(), "so", 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer soConn.Close()
	var first, last time.Time
	bytes0 := live.State().StreamBytes
	var bytesFirst int64
	res, err := service.RunSO(ctx, service.SOConfig{Key: testSOKey, Operator: cfg, Members: members, Conn: soConn, Progress: func(st charging.Stats) {
		now := time.Now()
		if first.IsZero() {
			first, bytesFirst = now, live.State().StreamBytes
		}
		last = now
	}})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	<-hostDone
	// Let the last event reach the page.
	_ = poll(bctx, `document.getElementById('live-iter').textContent === '`+itoa(res.Coordinator.Operator().Iteration())+`'`)
	st := live.State()
	framesJSON, err := chromedp.Run(bctx, chromedp.Evaluate[string](`JSON.stringify(gv.frames)`))
	if err != nil {
		t.Fatal(err)
	}
	deltas, _ := chromedp.Run(bctx, chromedp.Evaluate[int](`gv.streamDeltas || 0`))
	var frames []float64
	_ = json.Unmarshal([]byte(framesJSON), &frames)
	sort.Float64s(frames)
	q := func(f float64) float64 {
		if len(frames) == 0 {
			return 0
		}
		return frames[min(len(frames)-1, int(f*float64(len(frames))))]
	}
	dur := last.Sub(first).Seconds()
	sent := st.StreamBytes - bytesFirst
	t.Logf("vehicles %d, iterations %d, progress messages %d, day %.1f s (first to last progress)", len(p.EVs), res.Coordinator.Operator().Iteration(), st.Updates, dur)
	t.Logf("stream: %d bytes to one browser during the day (%d at connect), %.0f bytes/s, %d progress events, %.0f bytes/event",
		sent, bytes0, float64(sent)/dur, deltas, float64(sent)/float64(max(deltas, 1)))
	t.Logf("frames: %d, median %.1f ms, p99 %.1f ms, max %.1f ms", len(frames), q(0.5), q(0.99), q(1))
	for _, p := range problems() {
		t.Errorf("browser problem: %s", p)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
