package dashboard

// Browser tests: Debian's chromium (headless) driven by chromedp loads the
// dashboard served from real runs of the gridveil binary and checks what the
// page shows against the run's files. Without chromium they are skipped,
// unless GRIDVEIL_REQUIRE_BROWSER=1 (set by .ci/run, which installs it).
// Screenshots go to $GRIDVEIL_ARTIFACTS/dashboard when that is set, else to
// the test's temporary directory.

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const chromiumPath = "/usr/bin/chromium"

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
	runs    sync.Map // name -> *runOnce
)

type runOnce struct {
	once sync.Once
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// gridveil builds the real binary once for the package's tests.
func gridveil(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "gridveil-dashboard-test-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "gridveil")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/gridveil/gridveil/cmd/gridveil").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// realRun runs `gridveil ARGS --out DIR` once per name and returns DIR.
func realRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	bin := gridveil(t)
	v, _ := runs.LoadOrStore(name, &runOnce{})
	r := v.(*runOnce)
	r.once.Do(func() {
		r.dir = filepath.Join(binDir, name)
		cmd := exec.Command(bin, append(args, "--out", r.dir, "--quiet")...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			r.err = fmt.Errorf("gridveil %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.dir
}

func simRun(t *testing.T) string {
	return realRun(t, "sim", "sim", "--privacy", "masking", "--privacy-compare", "--dump-view", "so")
}

// browser starts a fresh headless chromium and returns its context and the
// console problems it reported so far.
func browser(t *testing.T) (context.Context, func() []string) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("GRIDVEIL_REQUIRE_BROWSER") == "1" {
			t.Fatalf("%s: %v (apt-get install chromium)", chromiumPath, err)
		}
		t.Skipf("no %s: apt-get install chromium to run the browser tests", chromiumPath)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// Containers have a small /dev/shm, which crashes chromium's renderer.
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	// A bound, not an assertion: a hung browser ends the test.
	ctx, cancelT := context.WithTimeout(context.Background(), 3*time.Minute)
	actx, cancelA := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA(); cancelT() })
	var mu sync.Mutex
	var problems []string
	msgs := chromedp.Console(bctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			switch m.Type {
			case chromedp.ConsoleWarning, chromedp.ConsoleError, chromedp.ConsoleException:
				mu.Lock()
				problems = append(problems, m.String()+" ("+m.URL+")")
				mu.Unlock()
			}
		}
	}()
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return bctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), problems...)
	}
}

func artifacts(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if a := os.Getenv("GRIDVEIL_ARTIFACTS"); a != "" {
		dir = filepath.Join(a, "dashboard")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(artifacts(t), name+".png")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", path)
}

// serve starts the dashboard over dir on loopback (httptest: a free port).
func serve(t *testing.T, dir string, live *Live) *httptest.Server {
	t.Helper()
	run, err := OpenRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	if live == nil {
		live = NewLive(nil)
	}
	s, err := New(Config{Run: run, Live: live})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(func() {
		// The page's event stream never ends by itself.
		hs.CloseClientConnections()
		hs.Close()
	})
	return hs
}

// poll waits until expr is true in the page. A poll that starts while the
// page replaces its document can lose its JavaScript context ("Cannot
// find context with specified id"): it is tried again, a bounded number
// of times.
func poll(ctx context.Context, expr string) error {
	var err error
	for range 5 {
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(30*time.Second)))
		if err == nil || !strings.Contains(err.Error(), "Cannot find context") {
			return err
		}
	}
	return err
}

// openView navigates to a view and waits until the page has drawn it.
func openView(t *testing.T, ctx context.Context, base, view string) {
	t.Helper()
	err := chromedp.Do(ctx, chromedp.Navigate(base+"/#"+view))
	if err == nil {
		err = poll(ctx, `document.body.dataset.ready === '1' && document.getElementById('view-`+view+`').dataset.rendered === '1'`)
	}
	if err != nil {
		t.Fatalf("view %s did not render: %v", view, err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

type seriesData struct {
	Name string          `json:"name"`
	Data json.RawMessage `json:"data"`
}

// chartSeries is what ECharts draws in the chart of element id.
func chartSeries(t *testing.T, ctx context.Context, id string) []seriesData {
	t.Helper()
	js := `(() => { const c = echarts.getInstanceByDom(document.getElementById('` + id + `')); if (!c) return null;
		return JSON.stringify(c.getOption().series.map(s => ({name: s.name, data: s.data}))); })()`
	s := eval[string](t, ctx, js)
	var out []seriesData
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		t.Fatalf("chart %s: %v (%q)", id, err, s)
	}
	return out
}

func seriesNumbers(t *testing.T, ctx context.Context, id, name string) []float64 {
	t.Helper()
	for _, s := range chartSeries(t, ctx, id) {
		if s.Name == name {
			var xs []float64
			if err := json.Unmarshal(s.Data, &xs); err != nil {
				t.Fatalf("chart %s series %q: %v", id, name, err)
			}
			return xs
		}
	}
	t.Fatalf("chart %s has no series %q", id, name)
	return nil
}

func equalFloats(t *testing.T, what string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: the page has %d values, the file %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s[%d]: the page shows %v, the file has %v", what, i, got[i], want[i])
		}
	}
}

// textNumber reads an element's text as the number it shows (6
// significant digits) and checks it against the file's value.
func textNumber(t *testing.T, ctx context.Context, id string, want float64) {
	t.Helper()
	s := eval[string](t, ctx, `document.getElementById('`+id+`').textContent`)
	got, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("#%s shows %q, not a number (want %v)", id, s, want)
	}
	if math.Abs(got-want) > 5e-6*math.Max(1, math.Abs(want)) {
		t.Fatalf("#%s shows %v, the file has %v", id, got, want)
	}
}

func readJSONFile(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func noProblems(t *testing.T, problems func() []string) {
	t.Helper()
	if p := problems(); len(p) > 0 {
		t.Fatalf("the browser reported %d problem(s):\n%s", len(p), strings.Join(p, "\n"))
	}
}

// TestBrowserSimRun: the page loads with no console error and the feeder,
// coordination and privacy views show a real sim run's files.
func TestBrowserSimRun(t *testing.T) {
	dir := simRun(t)
	ctx, problems := browser(t)
	hs := serve(t, dir, nil)

	var sol struct {
		Iterations  int                  `json:"iterations"`
		Objective   float64              `json:"objective"`
		Baseline    []float64            `json:"baseline_kw"`
		Aggregate   []float64            `json:"aggregate_kw"`
		Voltages    map[string][]float64 `json:"voltages_pu"`
		Schedules   map[string][]float64 `json:"schedules"`
		MinVoltage  float64              `json:"min_voltage_pu"`
		RelativeGap float64              `json:"relative_gap"`
	}
	readJSONFile(t, filepath.Join(dir, "solution.json"), &sol)

	// Run: every file on disk is listed as present, the others as absent.
	openView(t, ctx, hs.URL, "overview")
	states := eval[map[string]string](t, ctx, `Object.fromEntries([...document.querySelectorAll('#run-files tbody tr')].map(r => [r.dataset.file, r.dataset.state]))`)
	for _, f := range runFiles {
		_, err := os.Stat(filepath.Join(dir, f.name))
		want := map[bool]string{true: "present", false: "absent"}[err == nil]
		if states[f.name] != want {
			t.Errorf("run view: %s is %q, want %q", f.name, states[f.name], want)
		}
	}
	screenshot(t, ctx, "overview")

	// Feeder: each bus's colour value is its lowest voltage in solution.json.
	openView(t, ctx, hs.URL, "feeder")
	textNumber(t, ctx, "feeder-min-v", sol.MinVoltage)
	type node struct {
		Name     string  `json:"name"`
		Value    float64 `json:"value"`
		Children []node  `json:"children"`
	}
	var tree []node
	for _, s := range chartSeries(t, ctx, "chart-feeder-tree") {
		if err := json.Unmarshal(s.Data, &tree); err != nil {
			t.Fatal(err)
		}
	}
	seen := 0
	var walk func(n node)
	walk = func(n node) {
		if vs, ok := sol.Voltages["ieee13/"+n.Name]; ok {
			low := math.Inf(1)
			for _, v := range vs {
				low = math.Min(low, v)
			}
			if n.Value != low {
				t.Errorf("feeder tree: bus %s shows %v, its lowest voltage in solution.json is %v", n.Name, n.Value, low)
			}
			seen++
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	for _, n := range tree {
		walk(n)
	}
	if seen != len(sol.Voltages) {
		t.Errorf("feeder tree shows %d buses with voltages, solution.json has %d", seen, len(sol.Voltages))
	}
	screenshot(t, ctx, "feeder")

	// Coordination: Fig. 3's series are the file's, and the summary.
	openView(t, ctx, hs.URL, "coordination")
	equalFloats(t, "baseline", seriesNumbers(t, ctx, "chart-coord-load", "baseline"), sol.Baseline)
	equalFloats(t, "aggregate", seriesNumbers(t, ctx, "chart-coord-load", "with EVs (true grid)"), sol.Aggregate)
	textNumber(t, ctx, "coord-iterations", float64(sol.Iterations))
	textNumber(t, ctx, "coord-objective", sol.Objective)
	textNumber(t, ctx, "coord-gap", sol.RelativeGap)
	checkConvergenceChart(t, ctx, dir, sol.Iterations)
	screenshot(t, ctx, "coordination")

	// Privacy: the RMSE table is privacy.json's; the masked words are
	// so_view.json's, exactly (as hex: a JS number would lose bits).
	var pf struct {
		Adversaries []string `json:"adversaries"`
		Mechanisms  []struct {
			Mechanism string `json:"mechanism"`
			Attacks   struct {
				RMSE map[string]float64 `json:"rmse_kw"`
			} `json:"attacks"`
		} `json:"mechanisms"`
	}
	readJSONFile(t, filepath.Join(dir, "privacy.json"), &pf)
	openView(t, ctx, hs.URL, "privacy")
	cells := eval[map[string][]string](t, ctx, `Object.fromEntries([...document.querySelectorAll('#privacy-table tbody tr')].map(r => [r.dataset.mechanism, [...r.children].slice(1).map(c => c.textContent)]))`)
	for _, m := range pf.Mechanisms {
		row := cells[m.Mechanism]
		if len(row) < len(pf.Adversaries) {
			t.Fatalf("privacy table has no full row for %s: %v", m.Mechanism, row)
		}
		for i, a := range pf.Adversaries {
			got, err := strconv.ParseFloat(row[i], 64)
			want := m.Attacks.RMSE[a]
			if err != nil || math.Abs(got-want) > 5e-6*math.Max(1, want) {
				t.Errorf("privacy table %s/%s shows %q, privacy.json has %v", m.Mechanism, a, row[i], want)
			}
		}
	}
	var sv struct {
		Reports []struct {
			EV    string     `json:"ev"`
			Bus   string     `json:"bus"`
			Words [][]uint64 `json:"words"`
		} `json:"reports"`
	}
	readJSONFile(t, filepath.Join(dir, "so_view.json"), &sv)
	bus := eval[string](t, ctx, `document.getElementById('privacy-bus').value`)
	recv := eval[map[string]string](t, ctx, `Object.fromEntries([...document.querySelectorAll('#privacy-received tbody tr')].map(r => [r.dataset.ev, r.children[3].textContent]))`)
	checked := 0
	for _, r := range sv.Reports {
		got, ok := recv[r.EV]
		if r.Bus != bus || !ok {
			continue
		}
		var want []string
		for _, w := range r.Words[0][:4] {
			want = append(want, fmt.Sprintf("%016x", w))
		}
		if got != strings.Join(want, " ") {
			t.Errorf("privacy: %s's words show %q, so_view.json has %q", r.EV, got, strings.Join(want, " "))
		}
		checked++
	}
	if checked == 0 {
		t.Fatalf("privacy: no vehicle of bus %q shown", bus)
	}
	screenshot(t, ctx, "privacy")

	// Views this run has no files for say so plainly.
	openView(t, ctx, hs.URL, "market")
	if txt := eval[string](t, ctx, `document.querySelector('#view-market .absent').textContent`); !strings.Contains(txt, "no market.json") {
		t.Errorf("market view of a run without market.json says %q", txt)
	}
	openView(t, ctx, hs.URL, "auth")
	if txt := eval[string](t, ctx, `document.querySelector('#view-auth .absent').textContent`); !strings.Contains(txt, "no auth-events.jsonl") {
		t.Errorf("auth view of a run without auth-events.jsonl says %q", txt)
	}
	screenshot(t, ctx, "auth")
	noProblems(t, problems)
}

// checkConvergenceChart checks the finished run's convergence chart
// against convergence.json: every iteration's objective, change and gap,
// value for value, and that the file covers the run's iterations.
func checkConvergenceChart(t *testing.T, ctx context.Context, dir string, iterations int) {
	t.Helper()
	var conv struct {
		Iterations int   `json:"iterations"`
		Missing    []int `json:"missing"`
		History    []struct {
			Iter      float64  `json:"iteration"`
			Objective float64  `json:"objective"`
			Change    float64  `json:"change_kw"`
			Gap       *float64 `json:"relative_gap"`
		} `json:"history"`
	}
	readJSONFile(t, filepath.Join(dir, "convergence.json"), &conv)
	if conv.Iterations != iterations || len(conv.History)+len(conv.Missing) != iterations || len(conv.History) == 0 {
		t.Fatalf("convergence.json: %d points and %d missing for %d iterations; solution.json has %d", len(conv.History), len(conv.Missing), conv.Iterations, iterations)
	}
	pairs := func(name string) [][2]*float64 {
		for _, s := range chartSeries(t, ctx, "chart-coord-conv") {
			if s.Name == name {
				var xs [][2]*float64
				if err := json.Unmarshal(s.Data, &xs); err != nil {
					t.Fatalf("convergence chart %q: %v", name, err)
				}
				return xs
			}
		}
		t.Fatalf("convergence chart has no series %q", name)
		return nil
	}
	obj, chg, gap := pairs("objective"), pairs("change (kW)"), pairs("relative gap")
	if len(obj) != len(conv.History) || len(chg) != len(conv.History) || len(gap) != len(conv.History) {
		t.Fatalf("convergence chart has %d/%d/%d points, convergence.json %d", len(obj), len(chg), len(gap), len(conv.History))
	}
	certified := 0
	for i, p := range conv.History {
		if *obj[i][0] != p.Iter || *obj[i][1] != p.Objective {
			t.Fatalf("convergence chart: point %d shows objective %v at iteration %v, the file has %v at %v", i, *obj[i][1], *obj[i][0], p.Objective, p.Iter)
		}
		if p.Change > 0 && (chg[i][1] == nil || *chg[i][1] != p.Change) {
			t.Fatalf("convergence chart: iteration %v's change is %v, the file has %v", p.Iter, chg[i][1], p.Change)
		}
		if p.Gap != nil && *p.Gap > 0 {
			certified++
			if gap[i][1] == nil || *gap[i][1] != *p.Gap {
				t.Fatalf("convergence chart: iteration %v's gap is %v, the file has %v", p.Iter, gap[i][1], *p.Gap)
			}
		} else if gap[i][1] != nil {
			t.Fatalf("convergence chart: iteration %v shows a gap %v, the file has none", p.Iter, *gap[i][1])
		}
	}
	if certified == 0 {
		t.Fatal("convergence.json has no certified iteration: a converged run certifies its last")
	}
}

// TestBrowserMarketRun: the market view shows market.json.
func TestBrowserMarketRun(t *testing.T) {
	dir := realRun(t, "market", "sim", "--market")
	ctx, problems := browser(t)
	hs := serve(t, dir, nil)
	var m struct {
		Day struct {
			Windows []struct {
				VolumeWh float64 `json:"volume_wh"`
				Price    float64 `json:"price"`
			} `json:"windows"`
			Blocks  float64 `json:"blocks"`
			AppHash string  `json:"app_hash"`
		} `json:"day"`
	}
	readJSONFile(t, filepath.Join(dir, "market.json"), &m)
	openView(t, ctx, hs.URL, "market")
	var vol, price []float64
	for _, w := range m.Day.Windows {
		vol, price = append(vol, w.VolumeWh), append(price, w.Price)
	}
	equalFloats(t, "volume per window", seriesNumbers(t, ctx, "chart-market-price", "volume (Wh)"), vol)
	equalFloats(t, "clearing price", seriesNumbers(t, ctx, "chart-market-price", "clearing price"), price)
	textNumber(t, ctx, "market-blocks", m.Day.Blocks)
	if got := eval[string](t, ctx, `document.getElementById('market-apphash').textContent`); got != m.Day.AppHash {
		t.Errorf("app hash shows %q, market.json has %q", got, m.Day.AppHash)
	}
	if n := len(chartSeries(t, ctx, "chart-market-depth")); n != 2 {
		t.Errorf("order book depth has %d series, want bids and asks", n)
	}
	screenshot(t, ctx, "market")
	noProblems(t, problems)
}

// TestBrowserMetersAndHomes: the meters view shows ldp.json and
// ldp_baseline.json, the homes view home.json.
func TestBrowserMetersAndHomes(t *testing.T) {
	ldpDir := realRun(t, "ldp", "ldp", "--trials", "20")
	homeDir := realRun(t, "home", "home", "--homes", "3", "--ground-truth")
	baseDir := realRun(t, "ldpbase", "sim", "--baseline", "ldp", "--epsilon", "1")
	// One directory with the three runs' files, as a user would gather
	// them; ldp_baseline.json comes with its own run's solution.json.
	dir := t.TempDir()
	for src, names := range map[string][]string{ldpDir: {"ldp.json"}, homeDir: {"home.json"}, baseDir: {"ldp_baseline.json", "solution.json", "instance.json"}} {
		for _, n := range names {
			b, err := os.ReadFile(filepath.Join(src, n))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx, problems := browser(t)
	hs := serve(t, dir, nil)
	openView(t, ctx, hs.URL, "meters")

	var lf struct {
		Mechanisms []struct {
			Name string `json:"name"`
			Sum  struct {
				Estimate float64 `json:"estimate_kw"`
			} `json:"sum"`
		} `json:"mechanisms"`
	}
	readJSONFile(t, filepath.Join(dir, "ldp.json"), &lf)
	est := eval[map[string]string](t, ctx, `Object.fromEntries([...document.querySelectorAll('#ldp-table tbody tr')].map(r => [r.dataset.mechanism, r.children[2].textContent]))`)
	for _, m := range lf.Mechanisms {
		got, err := strconv.ParseFloat(est[m.Name], 64)
		if err != nil || math.Abs(got-m.Sum.Estimate) > 5e-6*math.Abs(m.Sum.Estimate) {
			t.Errorf("LDP table %s shows %q, ldp.json has %v", m.Name, est[m.Name], m.Sum.Estimate)
		}
	}
	var sol struct {
		Baseline []float64 `json:"baseline_kw"`
		SOView   struct {
			Baseline []float64 `json:"baseline_kw"`
		} `json:"so_view"`
	}
	readJSONFile(t, filepath.Join(dir, "solution.json"), &sol)
	equalFloats(t, "LDP baseline estimate", seriesNumbers(t, ctx, "chart-ldp-baseline", "LDP estimate"), sol.SOView.Baseline)
	equalFloats(t, "true baseline", seriesNumbers(t, ctx, "chart-ldp-baseline", "true baseline"), sol.Baseline)

	var hf struct {
		HomeDays []struct {
			LoadKW  []float64 `json:"load_kw"`
			Results map[string]struct {
				MeterKW []float64 `json:"meter_kw"`
			} `json:"results"`
		} `json:"home_days"`
		Schedulers []string `json:"schedulers"`
	}
	readJSONFile(t, filepath.Join(dir, "home.json"), &hf)
	equalFloats(t, "home 0 load", seriesNumbers(t, ctx, "chart-home-day", "household load"), hf.HomeDays[0].LoadKW)
	s0 := hf.Schedulers[0]
	equalFloats(t, "home 0 meter", seriesNumbers(t, ctx, "chart-home-day", "meter ("+s0+")"), hf.HomeDays[0].Results[s0].MeterKW)
	screenshot(t, ctx, "meters")
	noProblems(t, problems)
}

// TestBrowserStaticReports: the reports that sim, home, ldp and sim
// --market write load with no console error, and each figure has data
// (a drawn series of at least 5 segments).
func TestBrowserStaticReports(t *testing.T) {
	dirs := map[string]string{
		"sim":    simRun(t),
		"market": realRun(t, "market", "sim", "--market"),
		"home":   realRun(t, "home", "home", "--homes", "3", "--ground-truth"),
		"ldp":    realRun(t, "ldp", "ldp", "--trials", "20"),
	}
	ctx, problems := browser(t)
	for name, dir := range dirs {
		err := chromedp.Do(ctx, chromedp.Navigate("file://"+filepath.Join(dir, "report.html")))
		if err == nil {
			err = poll(ctx, `document.readyState === 'complete'`)
		}
		if err != nil {
			t.Fatalf("%s report: %v", name, err)
		}
		figs := eval[[]map[string]any](t, ctx, `[...document.querySelectorAll('svg')].map(s => ({label: s.getAttribute('aria-label') || '',
			series: [...s.querySelectorAll('path')].filter(p => ((p.getAttribute('d') || '').match(/L/g) || []).length >= 5).length,
			width: s.getBoundingClientRect().width}))`)
		if len(figs) == 0 {
			t.Errorf("%s report has no figure", name)
		}
		for _, f := range figs {
			if f["series"].(float64) == 0 || f["width"].(float64) == 0 {
				t.Errorf("%s report: figure %q has no data drawn (%v)", name, f["label"], f)
			}
		}
		screenshot(t, ctx, "report-"+name)
	}
	noProblems(t, problems)
}
