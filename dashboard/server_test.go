package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func progress(iter int, gap *float64, converged bool) []byte {
	b, _ := json.Marshal(map[string]any{"schema": progressSchema, "iteration": iter, "round": iter, "objective": 100.0 / float64(iter+1),
		"change_kw": 1.0 / float64(iter+1), "violation_pu": -0.01, "relative_gap": gap, "converged": converged, "so_view_aggregate_kw": []float64{1, 2, float64(iter)}})
	return b
}

func TestLiveApply(t *testing.T) {
	l := NewLive(nil)
	for i := 1; i <= 3; i++ {
		if err := l.Apply(progress(i, nil, false)); err != nil {
			t.Fatal(err)
		}
	}
	// The SO certifies iteration 3: the same iteration with its gap.
	g := 1e-12
	if err := l.Apply(progress(3, &g, true)); err != nil {
		t.Fatal(err)
	}
	st := l.State()
	if len(st.History) != 3 || st.History[2].Gap == nil || *st.History[2].Gap != g || !st.Latest.Converged {
		t.Fatalf("the certification of iteration 3 did not replace its point: %+v latest %+v", st.History, st.Latest)
	}
	// Bad messages are counted and named, and change nothing else.
	for _, bad := range []string{`not json`, `{"schema":"gridveil/coord-progress/v9","iteration":4}`, ``, `{"schema":"gridveil/coord-progress/v1","iteration":-1}`} {
		err := l.Apply([]byte(bad))
		if err == nil {
			t.Errorf("Apply(%q) accepted it", bad)
		}
	}
	st2 := l.State()
	if st2.Refused != 4 || len(st2.History) != 3 || st2.Latest.Iter != 3 || !strings.Contains(st2.LastRefusal, "iteration -1") {
		t.Fatalf("after bad messages: refused %d, history %d, latest %d, last refusal %q", st2.Refused, len(st2.History), st2.Latest.Iter, st2.LastRefusal)
	}
	// A lower iteration starts a new day.
	if err := l.Apply(progress(1, nil, false)); err != nil {
		t.Fatal(err)
	}
	if st := l.State(); st.Day != 2 || len(st.History) != 1 {
		t.Fatalf("a new day: day %d, history %d", st.Day, len(st.History))
	}
}

// readEvent reads one server-sent event.
func readEvent(t *testing.T, r *bufio.Reader) (string, string) {
	t.Helper()
	var event, data string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && event != "":
			return event, data
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
}

func openStream(t *testing.T, ctx context.Context, url string) *bufio.Reader {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/api/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("events: content type %q", ct)
	}
	return bufio.NewReader(resp.Body)
}

// TestEventStream: a stream starts with the whole state, then sends
// deltas; a new stream (a reconnect) gets the whole state again.
func TestEventStream(t *testing.T) {
	l := NewLive(nil)
	for i := 1; i <= 3; i++ {
		_ = l.Apply(progress(i, nil, false))
	}
	run, _ := OpenRun("")
	s, err := New(Config{Run: run, Live: l, PushInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	defer func() { hs.CloseClientConnections(); hs.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	r := openStream(t, ctx, hs.URL)
	ev, data := readEvent(t, r)
	var st LiveState
	if err := json.Unmarshal([]byte(data), &st); err != nil || ev != "state" || len(st.History) != 3 || st.Latest.Iter != 3 {
		t.Fatalf("first event %q %s (%v)", ev, data, err)
	}
	_ = l.Apply(progress(4, nil, false))
	ev, data = readEvent(t, r)
	var d Delta
	if err := json.Unmarshal([]byte(data), &d); err != nil || ev != "progress" || d.Latest.Iter != 4 || d.Points[len(d.Points)-1].Iter != 4 {
		t.Fatalf("second event %q %s (%v)", ev, data, err)
	}
	r2 := openStream(t, ctx, hs.URL)
	ev, data = readEvent(t, r2)
	if err := json.Unmarshal([]byte(data), &st); err != nil || ev != "state" || len(st.History) != 4 {
		t.Fatalf("a reconnect's first event %q %s (%v)", ev, data, err)
	}
}

func get(t *testing.T, h http.Handler, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// TestTokenAndReadOnly: with a token nothing is served without it; the
// token opens the page once and then lives in an HttpOnly cookie, never in
// the page; every method but GET and HEAD is refused.
func TestTokenAndReadOnly(t *testing.T) {
	const token = "0123456789abcdef0123"
	run, _ := OpenRun("")
	s, err := New(Config{Run: run, Live: NewLive(nil), Token: token})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/", "/api/v1/run", "/api/v1/events", "/assets/app.js"} {
		if w := get(t, s, "GET", path, nil); w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "token") {
			t.Errorf("GET %s without the token: %d %s", path, w.Code, w.Body)
		}
		if w := get(t, s, "GET", path, map[string]string{"Authorization": "Bearer wrong-wrong-wrong-wrong"}); w.Code != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong token: %d", path, w.Code)
		}
	}
	if w := get(t, s, "GET", "/api/v1/run", map[string]string{"Authorization": "Bearer " + token}); w.Code != http.StatusOK {
		t.Errorf("GET /api/v1/run with the token: %d %s", w.Code, w.Body)
	}
	w := get(t, s, "GET", "/?token="+token, nil)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/" {
		t.Fatalf("/?token=: %d, Location %q", w.Code, w.Header().Get("Location"))
	}
	c := w.Result().Cookies()
	if len(c) != 1 || c[0].Value != token || !c[0].HttpOnly {
		t.Fatalf("/?token= set cookies %+v", c)
	}
	w = get(t, s, "GET", "/", map[string]string{"Cookie": tokenCookie + "=" + token})
	if w.Code != http.StatusOK || strings.Contains(w.Body.String(), token) {
		t.Fatalf("the page with the cookie: %d, token in page %v", w.Code, strings.Contains(w.Body.String(), token))
	}
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH"} {
		w := get(t, s, m, "/api/v1/run", map[string]string{"Authorization": "Bearer " + token})
		if w.Code != http.StatusMethodNotAllowed || !strings.Contains(w.Body.String(), "read-only") {
			t.Errorf("%s: %d %s", m, w.Code, w.Body)
		}
	}
}

func TestCheckListen(t *testing.T) {
	for _, ok := range [][2]string{{"127.0.0.1:8080", ""}, {"[::1]:0", ""}, {"localhost:0", ""}, {"0.0.0.0:8080", "0123456789abcdef"}} {
		if err := CheckListen(ok[0], ok[1]); err != nil {
			t.Errorf("CheckListen(%q, %q): %v", ok[0], ok[1], err)
		}
	}
	for _, bad := range [][2]string{{"0.0.0.0:8080", ""}, {":8080", ""}, {"10.0.0.5:80", ""}, {"127.0.0.1:8080", "short"}} {
		if err := CheckListen(bad[0], bad[1]); !errors.Is(err, ErrToken) {
			t.Errorf("CheckListen(%q, %q) = %v, want ErrToken", bad[0], bad[1], err)
		}
	}
	if err := CheckListen("no-port", ""); err == nil || !strings.Contains(err.Error(), "host:port") {
		t.Errorf("CheckListen(no-port) = %v", err)
	}
}

// TestBadRunFiles: a damaged or foreign file is named with what to do; a
// view without it says so and serves what it can; nothing panics.
func TestBadRunFiles(t *testing.T) {
	if _, err := OpenRun(filepath.Join(t.TempDir(), "nope")); !errors.Is(err, ErrRunDir) {
		t.Errorf("OpenRun of a missing directory: %v", err)
	}
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o644)
	if _, err := OpenRun(f); !errors.Is(err, ErrRunDir) {
		t.Errorf("OpenRun of a file: %v", err)
	}
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("instance.json", `{"schema":"gridveil/instance/v1","slots":1,"vmin_pu":0.95,"feeders":[{"name":"f","slack":"s","v0_pu":1,"buses":[{"name":"s","parent":""},{"name":"b","parent":"s","baseline_kw":[1]}]}]}`)
	write("solution.json", `{"schema":"gridveil/solution/v1","voltages_pu":{"f/b":[0.9`)
	write("market.json", `{"schema":"gridveil/market/v1"}`)
	write("home.json", `{"schema":"gridveil/home/v1","home_days":"not a list"}`)
	run, err := OpenRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	fv := run.Feeder()
	if len(fv.Feeders) != 1 || len(fv.Feeders[0].Buses) != 2 || fv.Feeders[0].Buses[1].MinVoltage != nil {
		t.Fatalf("feeder view without a usable solution: %+v", fv)
	}
	if msg := strings.Join(fv.Absent, "\n"); !strings.Contains(msg, "solution.json is not valid JSON") || !strings.Contains(msg, "gridveil sim") {
		t.Errorf("truncated solution.json: %q", msg)
	}
	if msg := strings.Join(run.Market().Absent, "\n"); !strings.Contains(msg, `schema "gridveil/market/v1"`) || !strings.Contains(msg, "gridveil/market/v2") {
		t.Errorf("old market.json: %q", msg)
	}
	hv, err := run.Homes(0, "")
	if err != nil || !strings.Contains(strings.Join(hv.Absent, "\n"), "home.json does not match") {
		t.Errorf("malformed home.json: %v %q", err, hv.Absent)
	}
	s, _ := New(Config{Run: run, Live: NewLive(nil)})
	for _, path := range []string{"/api/v1/run", "/api/v1/feeder", "/api/v1/coordination", "/api/v1/privacy", "/api/v1/market", "/api/v1/auth", "/api/v1/meters", "/api/v1/homes"} {
		w := get(t, s, "GET", path, nil)
		if w.Code != http.StatusOK || !json.Valid(w.Body.Bytes()) {
			t.Errorf("GET %s over damaged files: %d %s", path, w.Code, w.Body)
		}
	}
	if w := get(t, s, "GET", "/api/v1/homes?home=x", nil); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "home's index") {
		t.Errorf("home=x: %d %s", w.Code, w.Body)
	}
	if w := get(t, s, "GET", "/api/v2/run", nil); w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "/api/v1/") {
		t.Errorf("an unknown API: %d %s", w.Code, w.Body)
	}
}

// TestAPIOverRealRun: the API's figures are the run's, and the privacy
// view refuses a bus with no reports by naming those it has.
func TestAPIOverRealRun(t *testing.T) {
	dir := simRun(t)
	run, err := OpenRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range run.Files() {
		if f.Error != "" {
			t.Errorf("%s: %s", f.Name, f.Error)
		}
	}
	if _, err := run.Privacy("nowhere/1"); err == nil || !strings.Contains(err.Error(), "ieee13/") {
		t.Errorf("privacy of an unknown bus: %v", err)
	}
	cv := run.Coordination()
	var sol solutionFile
	b, _ := os.ReadFile(filepath.Join(dir, "solution.json"))
	if err := json.Unmarshal(b, &sol); err != nil {
		t.Fatal(err)
	}
	// The EVs' load per bus sums to the aggregate minus the baseline.
	for tt := range sol.AggregateKW {
		var ev float64
		for _, s := range cv.EVLoadByBusKW {
			ev += s[tt]
		}
		if d := sol.AggregateKW[tt] - sol.BaselineKW[tt] - ev; d > 1e-6 || d < -1e-6 {
			t.Fatalf("slot %d: EV load per bus sums to %v, aggregate - baseline is %v", tt, ev, sol.AggregateKW[tt]-sol.BaselineKW[tt])
		}
	}
	s, _ := New(Config{Run: run, Live: NewLive(nil)})
	w := get(t, s, "GET", "/api/v1/privacy?bus=nowhere", nil)
	var e map[string]string
	if json.Unmarshal(w.Body.Bytes(), &e); w.Code != http.StatusBadRequest || !strings.Contains(e["error"], "buses with reports") {
		t.Errorf("privacy?bus=nowhere: %d %s", w.Code, w.Body)
	}
}

// TestCommandServes: `gridveil dashboard` serves a run on a free loopback
// port, never prints the token, and stops cleanly on SIGINT.
func TestCommandServes(t *testing.T) {
	dir := simRun(t)
	const token = "fedcba9876543210fedcba"
	cmd := exec.Command(gridveil(t), "dashboard", "--run", dir, "--addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "GRIDVEIL_DASHBOARD_TOKEN="+token)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("no first line: %v (stderr %s)", err, stderr.String())
	}
	if strings.Contains(line, token) {
		t.Fatalf("the command printed its token: %q", line)
	}
	i := strings.Index(line, "http://")
	j := strings.Index(line[max(i, 0):], "/ ")
	if i < 0 || j < 0 {
		t.Fatalf("no address in %q", line)
	}
	base := line[i : i+j]
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/run", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var ri RunInfo
	err = json.NewDecoder(resp.Body).Decode(&ri)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || ri.Dir != dir {
		t.Fatalf("GET /api/v1/run: %d %+v %v", resp.StatusCode, ri, err)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGINT: %v (stderr %s)", err, stderr.String())
	}
	if strings.Contains(stderr.String(), token) {
		t.Fatal("the command logged its token")
	}
}
