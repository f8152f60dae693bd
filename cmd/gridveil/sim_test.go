package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gridveil/gridveil/runfile"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRoot()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// TestSimFiles runs the README's main command and checks its files: all
// present, deterministic byte for byte whatever the worker count, and an
// instance.json that re-solves to the same solution.json.
func TestSimFiles(t *testing.T) {
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	out, err := run(t, "sim", "--out", a, "--workers", "1")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ieee13-paper", "84 EVs", "converged in", "report.html"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if _, err := run(t, "sim", "--out", b, "--workers", "3", "-q"); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, "sim", "--scenario", filepath.Join(a, "instance.json"), "--out", c, "-q"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"instance.json", "solution.json", "report.html"} {
		da, _ := os.ReadFile(filepath.Join(a, f))
		db, _ := os.ReadFile(filepath.Join(b, f))
		dc, _ := os.ReadFile(filepath.Join(c, f))
		if len(da) == 0 || !bytes.Equal(da, db) {
			t.Errorf("%s differs between 1 and 3 workers", f)
		}
		if f == "solution.json" && !bytes.Equal(da, dc) {
			t.Errorf("solving instance.json again gives a different solution.json")
		}
	}
	var sol struct {
		Schema    string               `json:"schema"`
		Converged bool                 `json:"converged"`
		Aggregate []float64            `json:"aggregate_kw"`
		Schedules map[string][]float64 `json:"schedules"`
		Voltages  map[string][]float64 `json:"voltages_pu"`
	}
	data, _ := os.ReadFile(filepath.Join(a, "solution.json"))
	if err := json.Unmarshal(data, &sol); err != nil {
		t.Fatal(err)
	}
	if sol.Schema != "gridveil/solution/v1" || !sol.Converged || len(sol.Aggregate) != 48 || len(sol.Schedules) != 84 || len(sol.Voltages) != 13 {
		t.Fatalf("solution.json: schema %q converged %v, %d slots, %d schedules, %d voltage series", sol.Schema, sol.Converged, len(sol.Aggregate), len(sol.Schedules), len(sol.Voltages))
	}
	if fi, err := os.Stat(filepath.Join(a, "report.html")); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("report.html: %v, mode %v", err, fi.Mode())
	}
}

// TestSimBadInput: a clear error naming the item, and no file written.
func TestSimBadInput(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ yaml, want string }{
		{"ev_list:\n - {id: big, bus: \"652\", pmax_kw: 7, energy_kwh: 500, arrive_slot: 0, depart_slot: 10}\n", `EV "big": demand 500.000 kWh cannot be met`},
		{"ev_list:\n - {id: lost, bus: \"999\", pmax_kw: 7, energy_kwh: 5, arrive_slot: 0, depart_slot: 10}\n", `unknown bus "999"`},
		{"evs: {per_bus: 1, pmax_kw: [\n", "invalid scenario"},
	}
	for i, c := range cases {
		file := filepath.Join(dir, "bad.yaml")
		if err := os.WriteFile(file, []byte(c.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "out", string(rune('a'+i)))
		_, err := run(t, "sim", "--scenario", file, "--out", out)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want %q", err, c.want)
		}
		if ents, _ := os.ReadDir(out); len(ents) != 0 {
			t.Errorf("bad input left files in %s", out)
		}
	}
	if _, err := run(t, "sim", "--scenario", "nonexistent", "--out", dir); err == nil || !strings.Contains(err.Error(), "ieee13-paper") {
		t.Errorf("unknown scenario: %v", err)
	}
}

// TestSimNotConverged: an unfinished run says so in its files and exit code.
func TestSimNotConverged(t *testing.T) {
	dir := t.TempDir()
	_, err := run(t, "sim", "--scenario", "ieee13-stressed", "--max-iter", "20", "--out", dir, "-q")
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 3 || !strings.Contains(err.Error(), "did not converge") {
		t.Fatalf("want exit code 3 and 'did not converge', got %v", err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "solution.json"))
	if !bytes.Contains(data, []byte(`"converged":false`)) {
		t.Fatal("solution.json does not say converged: false")
	}
}

// TestSimLDPBaseline: the SO coordinates on LDP estimates; the comparison
// with the true-baseline optimum is written, and more privacy (smaller
// epsilon) costs more optimality.
func TestSimLDPBaseline(t *testing.T) {
	gap := func(eps string) float64 {
		dir := t.TempDir()
		if _, err := run(t, "sim", "--baseline", "ldp", "--epsilon", eps, "--out", dir, "-q"); err != nil {
			t.Fatal(err)
		}
		var f struct {
			Comparison struct {
				RelGap     float64 `json:"rel_gap"`
				Violations int     `json:"violations"`
			} `json:"comparison"`
		}
		readJSON(t, filepath.Join(dir, "ldp_baseline.json"), &f)
		return f.Comparison.RelGap
	}
	loose, tight := gap("8"), gap("0.5")
	if !(loose >= 0 && tight > loose) {
		t.Fatalf("objective gap %.3g at epsilon 8, %.3g at 0.5: want 0 <= loose < tight", loose, tight)
	}
	if _, err := run(t, "sim", "--baseline", "ldp", "--epsilon", "1", "--day-epsilon", "4", "--out", t.TempDir()); err == nil || !strings.Contains(err.Error(), "exactly one") {
		t.Fatalf("both epsilons accepted: %v", err)
	}
}

// TestSimMarket: the market day runs through the ledger application, is
// deterministic, conserves money, and respects the margin in every window.
func TestSimMarket(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for _, dir := range []string{a, b} {
		if _, err := run(t, "sim", "--market", "--market-rule", "mcafee", "--out", dir, "-q"); err != nil {
			t.Fatal(err)
		}
	}
	da, _ := os.ReadFile(filepath.Join(a, "market.json"))
	db, _ := os.ReadFile(filepath.Join(b, "market.json"))
	if len(da) == 0 || !bytes.Equal(da, db) {
		t.Fatal("market.json missing or not deterministic")
	}
	var mf runfile.Market
	if err := json.Unmarshal(da, &mf); err != nil {
		t.Fatal(err)
	}
	trades := 0
	for _, w := range mf.Day.Windows {
		if w.Demand > 0 && (w.Rho <= 0 || w.Rho > 1 || float64(w.Margin) > float64(w.Demand)) {
			t.Fatalf("window %d: rho %v, margin %d, demand %d", w.Index, w.Rho, w.Margin, w.Demand)
		}
		if w.Rejected != 0 {
			t.Fatalf("window %d: %d transactions rejected in a well-formed day", w.Index, w.Rejected)
		}
		trades += w.Trades
	}
	if trades == 0 || mf.Day.GridFees <= 0 || len(mf.Stations) != 12 {
		t.Fatalf("%d trades, fees %d, %d stations: the day traded nothing", trades, mf.Day.GridFees, len(mf.Stations))
	}
	// Rights before and after: every Wh a station holds after trading is
	// its initial right plus what it bought less what it sold, and the
	// stations' rights after trading sum to their rights before.
	var before, after, contracts int64
	for _, st := range mf.Day.Stations {
		if got := st.RightsBefore + st.Bought - st.Sold + st.P2PBought - st.P2PSold; got != st.RightsAfter {
			t.Fatalf("%s: rights before %d + bought %d - sold %d + P2P %d/%d = %d, after %d", st.Name, st.RightsBefore, st.Bought, st.Sold, st.P2PBought, st.P2PSold, got, st.RightsAfter)
		}
		before += st.RightsBefore
		after += st.RightsAfter
	}
	for _, w := range mf.Day.Windows {
		contracts += int64(w.Contracts)
	}
	// McAfee's reduced units stay out of P2P, and nothing else is left
	// unmatched in this day (the security check does not bind, there are no
	// reputation bounds), so P2P trades nothing: re-trading the reduced
	// units would undo the reduction in every window.
	if before != after || mf.Day.GridFees != mf.Day.Income.Total() || mf.Day.Income.Penalties <= 0 || contracts != 0 {
		t.Fatalf("rights %d before, %d after; grid holds %d, income %+v; %d P2P contracts", before, after, mf.Day.GridFees, mf.Day.Income, contracts)
	}
	// Rolling prices: complementary slackness in every window, checked
	// by recomputing demand from the choke prices at the posted price.
	r := mf.Rolling
	if r == nil || !r.Converged || len(r.Price) != len(mf.Day.Windows) {
		t.Fatalf("rolling prices missing or unsettled: %+v", r)
	}
	byStation := stationDemand(t, a, len(mf.Day.Windows))
	for w, win := range mf.Day.Windows {
		var demand float64
		for name, d := range byStation {
			demand += d[w] * math.Max(0, 1-r.Price[w]/r.Choke[name])
		}
		margin := float64(win.Margin)
		if r.Price[w] > 0 && math.Abs(demand-margin) > 1 || r.Price[w] == 0 && demand > margin+1 {
			t.Fatalf("window %d: price %.3f, demand %.1f Wh at it, margin %.0f Wh", w, r.Price[w], demand, margin)
		}
	}
	if _, err := run(t, "sim", "--market", "--market-margin", "1.5", "--out", t.TempDir()); err == nil {
		t.Fatal("a margin above demand accepted")
	}
}

// stationDemand rebuilds each station's demand per 30-minute window (Wh)
// from instance.json and solution.json in dir: the EVs of the first feeder
// at each bus, as sim --market defines its stations.
func stationDemand(t *testing.T, dir string, windows int) map[string][]float64 {
	t.Helper()
	var inst struct {
		DT      float64                 `json:"dt_hours"`
		Feeders []struct{ Name string } `json:"feeders"`
		EVs     []struct {
			ID     string `json:"id"`
			Feeder string `json:"feeder"`
			Bus    string `json:"bus"`
		} `json:"evs"`
	}
	var sol struct {
		Schedules map[string][]float64 `json:"schedules"`
	}
	for name, v := range map[string]any{"instance.json": &inst, "solution.json": &sol} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, v); err != nil {
			t.Fatal(err)
		}
	}
	spw := int(math.Round(0.5 / inst.DT))
	out := map[string][]float64{}
	for _, ev := range inst.EVs {
		if ev.Feeder != inst.Feeders[0].Name {
			continue
		}
		name := "station-" + ev.Bus
		if out[name] == nil {
			out[name] = make([]float64, windows)
		}
		for slot, x := range sol.Schedules[ev.ID] {
			out[name][slot/spw] += math.Round(x * inst.DT * 1000)
		}
	}
	return out
}

// TestSimExitRule: one rule for every mechanism. A run whose solver did not
// pass its stopping test writes complete files that say converged: false
// and exits 3; a converged run exits 0. Noisy mechanisms never pass the
// test, so they always exit 3, with a message that says why.
func TestSimExitRule(t *testing.T) {
	for _, c := range []struct {
		args      []string
		converged bool
		want      string
	}{
		{[]string{"--privacy", "dp", "--iterations", "30"}, false, "noisy sums"},
		{[]string{"--privacy", "obfuscation", "--iterations", "30"}, false, "noisy sums"},
		{[]string{"--scenario", "ieee13-stressed", "--max-iter", "20"}, false, "raise --max-iter"},
		{[]string{"--privacy", "masking", "--mask-auth=false"}, true, ""},
		{nil, true, ""},
	} {
		dir := t.TempDir()
		_, err := run(t, append([]string{"sim", "--out", dir, "-q"}, c.args...)...)
		var sol struct {
			Converged bool `json:"converged"`
		}
		readJSON(t, filepath.Join(dir, "solution.json"), &sol)
		var ee *exitError
		switch {
		case sol.Converged != c.converged:
			t.Errorf("%v: solution.json says converged %v", c.args, sol.Converged)
		case c.converged && err != nil:
			t.Errorf("%v: a converged run failed: %v", c.args, err)
		case !c.converged && (!errors.As(err, &ee) || ee.code != 3 || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%v: an unconverged run gave %v; want exit status 3 naming %q", c.args, err, c.want)
		}
	}
}

// TestSimLooseInput: counts that used to be accepted silently are refused
// by name, and an unknown scenario key is named by its place in the file
// with the keys valid there, not by a Go type; nothing is written.
func TestSimLooseInput(t *testing.T) {
	dir := t.TempDir()
	yml := filepath.Join(dir, "typo.yaml")
	if err := os.WriteFile(yml, []byte("evs: {per_bus: 1, pmax_kw: 7, energy_kwh: [5, 10], colour: red}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--evs", "0"}, "--evs 0"},
		{[]string{"--workers", "-3"}, "--workers -3"},
		{[]string{"--max-iter", "0"}, "--max-iter 0"},
		{[]string{"--privacy", "dp", "--iterations", "-1"}, "--iterations -1"},
		{[]string{"--scenario", yml}, `unknown key "evs.colour" (line 1, column 52): in evs the keys are per_bus, buses, pmax_kw`},
	} {
		out := filepath.Join(dir, "out")
		_, err := run(t, append([]string{"sim", "--out", out, "-q"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "scenario.EVSpec") {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
		if _, serr := os.Stat(out); serr == nil {
			t.Errorf("%v: refused input left %s", c.args, out)
		}
	}
}
