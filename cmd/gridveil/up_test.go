package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// asMain makes this test binary act as the gridveil binary when gridveil
// up starts it as a party (os.Executable is the test binary in tests).
const asMain = "GRIDVEIL_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMain) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type upSolution struct {
	Iterations int                  `json:"iterations"`
	Converged  bool                 `json:"converged"`
	Baseline   []float64            `json:"baseline_kw"`
	Aggregate  []float64            `json:"aggregate_kw"`
	Schedules  map[string][]float64 `json:"schedules"`
	MinVoltage float64              `json:"min_voltage_pu"`
}

func readSolution(t *testing.T, path string) upSolution {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s upSolution
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// checkUpLikeSim checks a day run by gridveil up against gridveil sim on
// the same scenario and seed: the aggregate from the vehicles' own
// schedules within 1e-6 kW, every schedule within 1e-6 kW, and the file's
// aggregate equal to baseline plus schedules.
func checkUpLikeSim(t *testing.T, upDir, simDir string) {
	t.Helper()
	u, s := readSolution(t, filepath.Join(upDir, "solution.json")), readSolution(t, filepath.Join(simDir, "solution.json"))
	if !u.Converged {
		t.Fatal("the day over processes did not converge")
	}
	recomputed := append([]float64(nil), u.Baseline...)
	for _, x := range u.Schedules {
		for tt, v := range x {
			recomputed[tt] += v
		}
	}
	worst, self := 0.0, 0.0
	for tt := range s.Aggregate {
		worst = math.Max(worst, math.Abs(u.Aggregate[tt]-s.Aggregate[tt]))
		self = math.Max(self, math.Abs(u.Aggregate[tt]-recomputed[tt]))
	}
	if worst > 1e-6 || self > 1e-9 {
		t.Fatalf("up's aggregate off sim's by %g kW, off its own schedules by %g kW", worst, self)
	}
	if len(u.Schedules) != len(s.Schedules) {
		t.Fatalf("up has %d schedules, sim %d", len(u.Schedules), len(s.Schedules))
	}
	t.Logf("up: %d iterations (sim %d), aggregate within %.2g kW of sim's", u.Iterations, s.Iterations, worst)
}

// TestUpMatchesSim runs the day as real OS processes (the NATS server, the
// SO and three EV hosts, each started by gridveil up) and compares it with
// the in-process simulation.
func TestUpMatchesSim(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five processes")
	}
	t.Setenv(asMain, "1")
	up, sim := t.TempDir(), t.TempDir()
	out, err := run(t, "up", "--scenario", "ieee13-stressed", "--hosts", "3", "--out", up)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, f := range []string{"instance.json", "solution.json", "convergence.json", "so.json", "report.html", "run.json", "events.log", "parties/so/metrics", "parties/ev-2/metrics"} {
		if _, err := os.Stat(filepath.Join(up, f)); err != nil {
			t.Errorf("up wrote no %s", f)
		}
	}
	if _, err := run(t, "sim", "--scenario", "ieee13-stressed", "--out", sim, "-q"); err != nil {
		t.Fatal(err)
	}
	checkUpLikeSim(t, up, sim)
	checkConvergenceLikeSim(t, up, sim, 0)
	a, _ := os.ReadFile(filepath.Join(up, "instance.json"))
	b, _ := os.ReadFile(filepath.Join(sim, "instance.json"))
	if string(a) != string(b) {
		t.Error("up and sim built different instances from the same scenario and seed")
	}
}

// TestUpSOKilledResumes kills the SO process with SIGKILL right after it
// saved iteration 10 (a fault injection point, so the crash lands at the
// same place on any machine): up starts it again, it resumes from its
// state file at iteration 11 instead of starting the day again, and the
// day ends as sim's does.
func TestUpSOKilledResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	t.Setenv(asMain, "1")
	t.Setenv(faultKillSO, "10")
	up, sim := t.TempDir(), t.TempDir()
	out, err := run(t, "up", "--out", up)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var runFile struct {
		Restarts map[string]int `json:"restarts"`
	}
	b, _ := os.ReadFile(filepath.Join(up, "run.json"))
	if err := json.Unmarshal(b, &runFile); err != nil {
		t.Fatal(err)
	}
	if runFile.Restarts["so"] != 1 {
		t.Fatalf("SO restarted %d times, want 1 (run.json %s)", runFile.Restarts["so"], b)
	}
	var so struct {
		Resumed bool `json:"resumed"`
	}
	b, _ = os.ReadFile(filepath.Join(up, "so.json"))
	if err := json.Unmarshal(b, &so); err != nil || !so.Resumed {
		t.Fatalf("the final SO did not resume from its state: %s", b)
	}
	events, _ := os.ReadFile(filepath.Join(up, "events.log"))
	if !strings.Contains(string(events), "killed by killed") && !strings.Contains(string(events), "was killed by") {
		t.Errorf("events.log does not record the crash")
	}
	if !strings.Contains(string(events), "resumed from saved state") || !strings.Contains(string(events), "iteration=10") {
		t.Errorf("events.log does not show the SO resuming after iteration 10")
	}
	if strings.Count(string(events), "so: iteration 10 ") != 1 {
		t.Errorf("iteration 10 completed %d times: the restarted SO repeated work", strings.Count(string(events), "so: iteration 10 "))
	}
	if _, err := run(t, "sim", "--out", sim, "-q"); err != nil {
		t.Fatal(err)
	}
	checkUpLikeSim(t, up, sim)
	checkConvergenceLikeSim(t, up, sim, 1)
}

// TestUpRefusesBadInput checks that a day that cannot run is refused
// before any process starts, naming the problem, with nothing written.
func TestUpRefusesBadInput(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--hosts", "0"}, "--hosts 0"},
		{[]string{"--evs", "-4"}, "--evs -4"},
		{[]string{"--scenario", "no-such-scenario"}, "no-such-scenario"},
		{[]string{"--hosts", "500"}, "only 84 vehicles"},
	} {
		dir := filepath.Join(t.TempDir(), "out")
		_, err := run(t, append([]string{"up", "--out", dir}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("up %v: %v, want an error naming %q", c.args, err, c.want)
		}
		if _, serr := os.Stat(dir); serr == nil {
			t.Errorf("up %v wrote %s", c.args, dir)
		}
	}
}

// TestUpEVHostKilled kills EV host 1 with SIGKILL when round 20's
// broadcast reaches it (a fault injection point): the SO drops its
// vehicles once they have been silent for three re-sends, keeps the
// schedules they last reported as fixed loads, and the survivors finish
// the day: converged, certified, and the files' aggregate is the true
// grid's under every vehicle's schedule, the dropped ones' included.
func TestUpEVHostKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	t.Setenv(asMain, "1")
	t.Setenv(faultKillEV, "1:20")
	up := t.TempDir()
	out, err := run(t, "up", "--out", up, "--resend", "100ms", "--drop-after", "3")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var so struct {
		Converged bool `json:"converged"`
		Dropped   []struct {
			Sender    string    `json:"sender"`
			KeptRound int       `json:"kept_round"`
			Schedule  []float64 `json:"schedule_kw"`
		} `json:"dropped"`
	}
	b, _ := os.ReadFile(filepath.Join(up, "so.json"))
	if err := json.Unmarshal(b, &so); err != nil {
		t.Fatal(err)
	}
	// Host 1 of 2 hosts every odd vehicle: 42 of the paper's 84.
	if len(so.Dropped) != 42 || !so.Converged {
		t.Fatalf("%d vehicles dropped (want host 1's 42), converged %v", len(so.Dropped), so.Converged)
	}
	for _, d := range so.Dropped {
		if d.KeptRound != 19 {
			t.Errorf("%s: the SO kept its schedule of round %d; it last answered round 19", d.Sender, d.KeptRound)
		}
	}
	u := readSolution(t, filepath.Join(up, "solution.json"))
	if !u.Converged || len(u.Schedules) != 84 {
		t.Fatalf("converged %v, %d schedules", u.Converged, len(u.Schedules))
	}
	agg := append([]float64(nil), u.Baseline...)
	for _, x := range u.Schedules {
		for tt, v := range x {
			agg[tt] += v
		}
	}
	for tt := range agg {
		if math.Abs(agg[tt]-u.Aggregate[tt]) > 1e-9 {
			t.Fatalf("slot %d: the file's aggregate %v, baseline plus every schedule %v", tt, u.Aggregate[tt], agg[tt])
		}
	}
	events, _ := os.ReadFile(filepath.Join(up, "events.log"))
	for _, want := range []string{"ev-1 was killed", "dropped a silent vehicle"} {
		if !strings.Contains(string(events), want) {
			t.Errorf("events.log lacks %q", want)
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for a command writing while the
// test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestUpDashboard runs a day with --dashboard: the page's live API follows
// the SO to its converged end over the day's bus, and once the day is
// over the same address serves the day's files, whose aggregate equals
// solution.json's; Ctrl-C (the context) stops it.
func TestUpDashboard(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	t.Setenv(asMain, "1")
	up := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out lockedBuffer
	cmd := newRoot()
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{"up", "--out", up, "--dashboard", "127.0.0.1:0"})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	get := func(url string, v any) error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return json.NewDecoder(resp.Body).Decode(v)
	}
	base := ""
	var coord struct {
		Aggregate   []float64 `json:"aggregate_kw"`
		Convergence *struct {
			Source  string `json:"source"`
			Missing int    `json:"missing"`
			Points  []struct {
				Iter      int     `json:"iteration"`
				Objective float64 `json:"objective"`
			} `json:"points"`
		} `json:"convergence"`
	}
	var live struct {
		Following bool `json:"following"`
		Latest    *struct {
			Iteration int  `json:"iteration"`
			Converged bool `json:"converged"`
		} `json:"latest"`
	}
	for i := 0; ; i++ {
		if i > 1500 {
			t.Fatalf("the dashboard never showed the finished day:\n%s", out.String())
		}
		select {
		case err := <-done:
			t.Fatalf("up ended before the test stopped it: %v\n%s", err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if base == "" {
			for _, l := range strings.Split(out.String(), "\n") {
				if rest, ok := strings.CutPrefix(strings.TrimSpace(l), "dashboard    "); ok {
					base = strings.Fields(rest)[0]
				}
			}
			continue
		}
		if !strings.Contains(out.String(), "shows the finished day") {
			continue
		}
		if err := get(base+"api/v1/live", &live); err != nil {
			t.Fatal(err)
		}
		if err := get(base+"api/v1/coordination", &coord); err != nil {
			t.Fatal(err)
		}
		break
	}
	if !live.Following || live.Latest == nil || !live.Latest.Converged || live.Latest.Iteration != 28 {
		t.Fatalf("the live view did not follow the day to its end: %+v", live)
	}
	sol := readSolution(t, filepath.Join(up, "solution.json"))
	if len(coord.Aggregate) != len(sol.Aggregate) {
		t.Fatalf("the page's aggregate has %d slots, solution.json %d", len(coord.Aggregate), len(sol.Aggregate))
	}
	for tt := range sol.Aggregate {
		if coord.Aggregate[tt] != sol.Aggregate[tt] {
			t.Fatalf("slot %d: the page shows %v kW, solution.json %v", tt, coord.Aggregate[tt], sol.Aggregate[tt])
		}
	}
	// The finished day's convergence on the page is convergence.json's,
	// recorded through the dashboard's own subscription.
	conv := readConvergence(t, up)
	if coord.Convergence == nil || coord.Convergence.Source != "so-progress" || coord.Convergence.Missing != 0 || len(coord.Convergence.Points) != conv.Iterations {
		t.Fatalf("the page's convergence %+v; convergence.json has %d iterations", coord.Convergence, conv.Iterations)
	}
	for i, p := range coord.Convergence.Points {
		if p.Iter != conv.History[i].Iter || p.Objective != conv.History[i].Objective {
			t.Fatalf("convergence point %d: the page shows %+v, convergence.json %+v", i, p, conv.History[i])
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("up did not stop on Ctrl-C")
	}
}
