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
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gridveil/gridveil/aggregate"
	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/day"
	"github.com/gridveil/gridveil/transport"
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

// busSums sums a solution's schedules per bus ("feeder/bus"), with the
// buses of the instance.
func busSums(t *testing.T, dir string) map[string][]float64 {
	t.Helper()
	var inst struct {
		EVs []struct {
			ID     string `json:"id"`
			Feeder string `json:"feeder"`
			Bus    string `json:"bus"`
		} `json:"evs"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "instance.json"))
	if err == nil {
		err = json.Unmarshal(b, &inst)
	}
	if err != nil {
		t.Fatalf("instance.json of %s: %v", dir, err)
	}
	sol := readSolution(t, filepath.Join(dir, "solution.json"))
	out := map[string][]float64{}
	for _, ev := range inst.EVs {
		k := ev.Feeder + "/" + ev.Bus
		if out[k] == nil {
			out[k] = make([]float64, len(sol.Baseline))
		}
		for tt, v := range sol.Schedules[ev.ID] {
			out[k][tt] += v
		}
	}
	return out
}

// checkMaskedBusSums checks that the per-bus sums of an up day with
// masking are sim's (from the schedules, within 1e-6 kW), and that the
// sums the SO coordinated on last (so.json, all it learnt) are its own
// vehicles' final schedules summed per bus, to the fixed-point precision:
// each vehicle's value rounded to 2^-32 kW (at most 2^-33 off), plus
// 1e-9 kW for summing floats in another order. It returns the SO's sums.
func checkMaskedBusSums(t *testing.T, upDir, simDir string) map[string][]float64 {
	t.Helper()
	u, s := busSums(t, upDir), busSums(t, simDir)
	var so struct {
		BusSums map[string][]float64 `json:"bus_sums_kw"`
	}
	b, _ := os.ReadFile(filepath.Join(upDir, "so.json"))
	if err := json.Unmarshal(b, &so); err != nil {
		t.Fatal(err)
	}
	if len(u) != len(s) || len(so.BusSums) != len(u) {
		t.Fatalf("%d buses in up, %d in sim, %d in so.json", len(u), len(s), len(so.BusSums))
	}
	worst, seen := 0.0, 0.0
	for k, x := range u {
		if s[k] == nil || so.BusSums[k] == nil {
			t.Fatalf("bus %s missing from sim or so.json", k)
		}
		for tt, v := range x {
			worst = math.Max(worst, math.Abs(v-s[k][tt]))
			seen = math.Max(seen, math.Abs(v-so.BusSums[k][tt]))
		}
	}
	evs := len(readSolution(t, filepath.Join(upDir, "solution.json")).Schedules)
	if prec := float64(evs)/(1<<33) + 1e-9; worst > 1e-6 || seen > prec {
		t.Fatalf("per-bus sums: up off sim by %g kW; the SO's last sums off the vehicles' schedules by %g kW (fixed-point bound %g)", worst, seen, prec)
	}
	t.Logf("per-bus sums within %.2g kW of sim's; the SO's within %.2g kW of the vehicles'", worst, seen)
	return so.BusSums
}

// TestUpMaskingMatchesSim runs the day with masking as OS processes (the
// NATS server, the SO, three EV hosts): the same aggregate within 1e-6
// kW and the same per-bus sums as gridveil sim --privacy masking on the
// same scenario and seed, and no report crossed the bus in the clear (the
// SO refused none, and none was sent).
func TestUpMaskingMatchesSim(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five processes")
	}
	t.Setenv(asMain, "1")
	up, sim := t.TempDir(), t.TempDir()
	out, err := run(t, "up", "--scenario", "ieee13-stressed", "--seed", "4", "--hosts", "3", "--privacy", "masking", "--out", up)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if _, err := run(t, "sim", "--scenario", "ieee13-stressed", "--seed", "4", "--privacy", "masking", "--out", sim, "-q"); err != nil {
		t.Fatal(err)
	}
	checkUpLikeSim(t, up, sim)
	checkMaskedBusSums(t, up, sim)
	u := readSolution(t, filepath.Join(up, "solution.json"))
	var priv struct {
		Privacy string `json:"privacy"`
	}
	b, _ := os.ReadFile(filepath.Join(up, "solution.json"))
	_ = json.Unmarshal(b, &priv)
	events, _ := os.ReadFile(filepath.Join(up, "events.log"))
	if priv.Privacy != "masking" || !strings.Contains(string(events), "with privacy masking") || strings.Contains(string(events), "report in clear") || !u.Converged {
		t.Fatalf("privacy %q, converged %v; events.log:\n%s", priv.Privacy, u.Converged, events)
	}
}

// TestUpMaskingV2GSumsNegative (issue 15 over the network): on the V2G
// scenario, where vehicles discharge (negative kW), up --privacy masking
// equals sim --privacy masking, and the SO's masked per-bus sums, negative
// where a bus gives energy back, are the vehicles' schedules summed to the
// fixed-point precision.
func TestUpMaskingV2GSumsNegative(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	t.Setenv(asMain, "1")
	up, sim := t.TempDir(), t.TempDir()
	if out, err := run(t, "up", "--scenario", "ieee13-v2g", "--privacy", "masking", "--out", up); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// up runs no discharge request yet (every bidirectional vehicle may
	// discharge), so sim is asked for the same day: --v2g-request=false.
	if _, err := run(t, "sim", "--scenario", "ieee13-v2g", "--v2g-request=false", "--privacy", "masking", "--out", sim, "-q"); err != nil {
		t.Fatal(err)
	}
	checkUpLikeSim(t, up, sim)
	sums := checkMaskedBusSums(t, up, sim)
	neg, negSums := 0, 0
	for _, x := range readSolution(t, filepath.Join(up, "solution.json")).Schedules {
		for _, v := range x {
			if v < 0 {
				neg++
			}
		}
	}
	for _, x := range sums {
		for _, v := range x {
			if v < 0 {
				negSums++
			}
		}
	}
	if neg == 0 || negSums == 0 {
		t.Fatalf("%d negative schedule values and %d negative bus-slot sums: the scenario should discharge", neg, negSums)
	}
	t.Logf("%d discharging vehicle-slots, %d negative bus-slot sums", neg, negSums)
}

// TestUpMaskingSOKilledResumes kills the SO with SIGKILL right after it
// saved iteration 10 of a day with masking: up starts it again, it reads
// the bus's key lists and its state back, resumes at iteration 11 without
// completing iteration 10 twice, and the day ends as sim --privacy
// masking's.
func TestUpMaskingSOKilledResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	t.Setenv(asMain, "1")
	t.Setenv(faultKillSO, "10")
	up, sim := t.TempDir(), t.TempDir()
	out, err := run(t, "up", "--privacy", "masking", "--out", up)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var so struct {
		Resumed bool `json:"resumed"`
	}
	b, _ := os.ReadFile(filepath.Join(up, "so.json"))
	if err := json.Unmarshal(b, &so); err != nil || !so.Resumed {
		t.Fatalf("the final SO did not resume from its state: %s", b)
	}
	events, _ := os.ReadFile(filepath.Join(up, "events.log"))
	if !strings.Contains(string(events), "was killed by") || !strings.Contains(string(events), "resumed from saved state") || !strings.Contains(string(events), "iteration=10") {
		t.Fatalf("events.log does not show the SO killed and resuming after iteration 10:\n%s", events)
	}
	if n := strings.Count(string(events), "so: iteration 10 "); n != 1 {
		t.Errorf("iteration 10 completed %d times: the restarted SO repeated work", n)
	}
	if _, err := run(t, "sim", "--privacy", "masking", "--out", sim, "-q"); err != nil {
		t.Fatal(err)
	}
	checkUpLikeSim(t, up, sim)
	checkMaskedBusSums(t, up, sim)
}

// TestUpMaskingEVHostKilled SIGKILLs EV host 1 of 3 when round 20's
// broadcast arrives, in a day with masking. The SO drops its 28 vehicles
// once they stay silent; masking's dropout recovery runs over the network
// (the survivors reveal their masks of each round with the dropped, and
// nothing else), the dropped vehicles' charge points stop (the SO never
// knew their schedules), and the day ends certified. The survivors'
// schedules are checked against an independent in-process solve of the
// survivors' problem, to the certified bound of both runs.
func TestUpMaskingEVHostKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	t.Setenv(asMain, "1")
	t.Setenv(faultKillEV, "1:20")
	up := t.TempDir()
	out, err := run(t, "up", "--privacy", "masking", "--hosts", "3", "--out", up, "--resend", "100ms", "--drop-after", "3")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var so struct {
		Converged bool     `json:"converged"`
		Gap       *float64 `json:"relative_gap"`
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
	pl, err := day.Load("ieee13-paper", 0, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := pl.Problem
	// Host 1 of 3 hosts every third vehicle from the second: 28 of 84.
	if len(so.Dropped) != 28 || !so.Converged || so.Gap == nil {
		t.Fatalf("%d vehicles dropped (want host 1's 28), converged %v", len(so.Dropped), so.Converged)
	}
	for _, d := range so.Dropped {
		i := pl.Index(d.Sender)
		if i%3 != 1 || d.KeptRound != -1 || slices.ContainsFunc(d.Schedule, func(v float64) bool { return v != 0 }) {
			t.Errorf("%s (vehicle %d) dropped with kept round %d: want host 1's vehicles, stopped (-1, zero load)", d.Sender, i, d.KeptRound)
		}
	}
	// The survivors' problem: the dropped vehicles are gone.
	q := *p
	q.EVs = nil
	for i, ev := range p.EVs {
		if i%3 != 1 {
			q.EVs = append(q.EVs, ev)
		}
	}
	want, err := charging.Solve(&q, charging.Options{})
	if err != nil {
		t.Fatal(err)
	}
	u := readSolution(t, filepath.Join(up, "solution.json"))
	var obj struct {
		Objective float64 `json:"objective"`
	}
	b, _ = os.ReadFile(filepath.Join(up, "solution.json"))
	_ = json.Unmarshal(b, &obj)
	worst := 0.0
	for tt := range u.Aggregate {
		worst = math.Max(worst, math.Abs(u.Aggregate[tt]-want.Aggregate[tt]))
	}
	tol := math.Sqrt(2**so.Gap*obj.Objective) + math.Sqrt(2*want.Gap*want.Objective)
	t.Logf("28 dropped at round 20; aggregate within %.2g kW of the survivors' optimum (certified bound %.2g kW)", worst, tol)
	if worst > tol {
		t.Fatalf("aggregate off the survivors' optimum by %g kW (bound %g)", worst, tol)
	}
	events, _ := os.ReadFile(filepath.Join(up, "events.log"))
	for _, w := range []string{"ev-1 was killed", "with masking its charge point stops"} {
		if !strings.Contains(string(events), w) {
			t.Errorf("events.log lacks %q", w)
		}
	}
}

// TestUpMaskingRefusesForged runs a day with masking as processes and,
// from a stranger's connection to the day's NATS server, publishes in the
// middle of it: a malformed masked report, a masked report replayed from
// an earlier round, a report in the clear, a key advertisement from a
// stranger (to the SO), and a forged key list and a malformed request (to
// the EV hosts). Each is refused with a log line naming its subject and
// reason, and the day still ends as sim --privacy masking's.
func TestUpMaskingRefusesForged(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	t.Setenv(asMain, "1")
	up, sim := t.TempDir(), t.TempDir()
	pl, err := day.Load("ieee13-paper", 0, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	ev := pl.Problem.EVs[0]
	done := make(chan error, 1)
	var out string
	go func() {
		var err error
		out, err = run(t, "up", "--privacy", "masking", "--pace", "50ms", "--out", up)
		done <- err
	}()
	// The day's bus, once the NATS server wrote its address.
	var url string
	for i := 0; url == ""; i++ {
		if b, err := os.ReadFile(filepath.Join(up, "parties", "nats", "addr")); err == nil && len(b) > 0 {
			url = strings.TrimSpace(string(b))
		}
		select {
		case err := <-done:
			t.Fatalf("the day ended before its bus was found: %v\n%s", err, out)
		case <-time.After(20 * time.Millisecond):
		}
		if i > 3000 {
			t.Fatal("no NATS address in 60 s")
		}
	}
	conn, err := transport.Connect(url, "stranger", 30*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	captured := make(chan []byte, 1)
	unsub, err := conn.Subscribe(transport.MaskReport(ev.Feeder, ev.Bus), "", func(_ string, d []byte) {
		select {
		case captured <- append([]byte(nil), d...):
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	var old []byte
	select {
	case old = <-captured:
	case err := <-done:
		t.Fatalf("the day ended before a masked report was seen: %v\n%s", err, out)
	case <-time.After(60 * time.Second):
		t.Fatal("no masked report in 60 s")
	}
	_ = unsub()
	// Wait until the SO has moved past old's round, so that old is a replay.
	oldRep, err := aggregate.ReadMaskReports(old) // a host's batch of the bus's reports
	if err != nil {
		t.Fatal(err)
	}
	later := make(chan struct{}, 1)
	unsub, err = conn.Subscribe(transport.CoordProgress, "", func(_ string, d []byte) {
		var p struct {
			Round int `json:"round"`
		}
		if json.Unmarshal(d, &p) == nil && p.Round > oldRep.Round+1 {
			select {
			case later <- struct{}{}:
			default:
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-later:
	case err := <-done:
		t.Fatalf("the day ended before round %d: %v\n%s", oldRep.Round+2, err, out)
	case <-time.After(60 * time.Second):
		t.Fatal("no progress in 60 s")
	}
	_ = unsub()
	clear, _ := (&charging.Report{Round: 1, Phase: charging.PhaseStep, Feeder: ev.Feeder, Bus: ev.Bus, Sender: pl.Pseudonym(0), Values: make([]float64, pl.Problem.Slots)}).MarshalBinary()
	stranger, _ := (&aggregate.MaskKey{Feeder: ev.Feeder, Bus: ev.Bus, Sender: "ps-stranger", PublicKey: make([]byte, 32)}).MarshalBinary()
	forged, _ := (&aggregate.MaskKeys{Feeder: ev.Feeder, Bus: ev.Bus, Threshold: 1, Keys: [][]byte{make([]byte, 32)}}).MarshalBinary()
	forged = append(forged, make([]byte, 64)...)
	for _, m := range []struct {
		subject string
		data    []byte
	}{
		{transport.MaskReport(ev.Feeder, ev.Bus), []byte("GV\x12\x01 not a report")},
		{transport.MaskReport(ev.Feeder, ev.Bus), old},
		{transport.CoordReport(ev.Feeder, ev.Bus), clear},
		{transport.MaskKey(ev.Feeder, ev.Bus), stranger},
		{transport.MaskKeys(ev.Feeder, ev.Bus), forged},
		{transport.MaskRequest(ev.Feeder, ev.Bus), []byte("GV\x13\x01")},
	} {
		if err := conn.Publish(m.subject, m.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("the day did not end in 3 minutes")
	}
	events, _ := os.ReadFile(filepath.Join(up, "events.log"))
	bus := fmt.Sprintf("gridveil.v1.coord.f%d.b%d.", ev.Feeder, ev.Bus)
	for _, w := range []struct{ who, kind, reason string }{
		{"so", "maskrep", "reason=malformed"},
		{"so", "maskrep", "reason=stale"},
		{"so", "report", `reason="report in clear"`},
		{"so", "maskkey", `reason="unknown sender"`},
		{"ev-", "maskkeys", "reason=forged"},
		{"ev-", "maskreq", "reason=malformed"},
	} {
		found := false
		for _, line := range strings.Split(string(events), "\n") {
			if strings.Contains(line, " "+w.who) && strings.Contains(line, "refused message") && strings.Contains(line, "subject="+bus+w.kind+" ") && strings.Contains(line, w.reason) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no line of %s refusing %s%s with %s in events.log", w.who, bus, w.kind, w.reason)
		}
	}
	if _, err := run(t, "sim", "--privacy", "masking", "--out", sim, "-q"); err != nil {
		t.Fatal(err)
	}
	checkUpLikeSim(t, up, sim)
	checkMaskedBusSums(t, up, sim)
}
