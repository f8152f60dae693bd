package main

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gridveil/gridveil/runfile"
)

// runLDPCmd runs "gridveil ldp" with args through the root command.
func runLDPCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return run(t, append([]string{"ldp"}, args...)...)
}

// TestLDPFiles: both files are written, ldp.json follows its documented
// schema and is consistent with itself, report.html is self-contained,
// and the output does not depend on the number of workers.
func TestLDPFiles(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	args := []string{"--meters", "500", "--trials", "20", "--epsilons", "0.5,2", "--seed", "3"}
	out, err := runLDPCmd(t, append(args, "--out", a, "--workers", "1")...)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"500 meters", "hybrid", "piecewise", "report.html", "ldp.json"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if _, err := runLDPCmd(t, append(args, "--out", b, "--workers", "3", "-q")...); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ldp.json", "report.html"} {
		da, _ := os.ReadFile(filepath.Join(a, f))
		db, _ := os.ReadFile(filepath.Join(b, f))
		if len(da) == 0 || !bytes.Equal(da, db) {
			t.Errorf("%s differs between 1 and 3 workers", f)
		}
		if fi, err := os.Stat(filepath.Join(a, f)); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: %v", f, err)
		}
	}
	var res runfile.LDP
	data, _ := os.ReadFile(filepath.Join(a, "ldp.json"))
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	if res.Schema != "gridveil/ldp/v1" || res.Meters != 500 || res.Trials != 20 || len(res.Mechanisms) != 5 {
		t.Fatalf("ldp.json: %+v", res)
	}
	if got := res.Epsilons; len(got) != 3 || got[0] != 0.5 || got[1] != 1 || got[2] != 2 {
		t.Errorf("epsilons %v, want [0.5 1 2] (the sweep plus --epsilon)", got)
	}
	for _, m := range res.Mechanisms {
		s := m.Sum
		if s.TruthKW != res.Population.SumKW || math.Abs(s.ErrorKW-(s.EstimateKW-s.TruthKW)) > 1e-9*s.TruthKW ||
			!(s.CI95KW[0] < s.EstimateKW && s.EstimateKW < s.CI95KW[1]) || !(s.TheoreticalVar > 0 && s.TheoreticalVar <= s.WorstCaseVar*(1+1e-12)) ||
			!(s.EmpiricalVar > 0 && s.EmpiricalVarSE > 0) || len(m.Sweep) != 3 || m.Epsilon != 1 {
			t.Errorf("%s: inconsistent %+v", m.Name, m)
		}
		if math.Abs(m.Mean.EstimateKW*500-s.EstimateKW) > 1e-9*math.Abs(s.EstimateKW) {
			t.Errorf("%s: mean %v is not sum %v / 500", m.Name, m.Mean.EstimateKW, s.EstimateKW)
		}
		if discrete := m.Name == "grr" || m.Name == "oue"; discrete != (len(m.Histogram) > 0) || discrete != (m.FrequencyVarianceAt0 != nil) {
			t.Errorf("%s: histogram %d levels, frequency variance %v", m.Name, len(m.Histogram), m.FrequencyVarianceAt0)
		}
		if (m.Name == "hybrid") != (m.Alpha != nil) {
			t.Errorf("%s: alpha %v", m.Name, m.Alpha)
		}
	}
	// The docs/ARCHITECTURE.md figures at epsilon 1, through the CLI.
	want := map[string]float64{"duchi": 4.68, "piecewise": 5.22, "hybrid": 4.29}
	for _, m := range res.Mechanisms {
		if w, ok := want[m.Name]; ok && math.Abs(m.WorstVarianceDomain-w) > 0.005 {
			t.Errorf("%s: worst per-report variance %.4f, want %.2f", m.Name, m.WorstVarianceDomain, w)
		}
	}
	page, _ := os.ReadFile(filepath.Join(a, "report.html"))
	for _, bad := range []string{"<script", "src=", "href=", "url(", "@import", "<link", "<?xml"} {
		if bytes.Contains(page, []byte(bad)) {
			t.Errorf("report.html contains %q: it must be self-contained", bad)
		}
	}
	if n := bytes.Count(page, []byte("<svg")); n != 2 {
		t.Errorf("report.html has %d inline figures, want 2 (error against epsilon, histograms)", n)
	}
}

// TestLDPOneMechanism: a mechanism's numbers do not depend on which other
// mechanisms run.
func TestLDPOneMechanism(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	args := []string{"--meters", "300", "--trials", "5", "--epsilons", "", "-q"}
	if _, err := runLDPCmd(t, append(args, "--out", a)...); err != nil {
		t.Fatal(err)
	}
	if _, err := runLDPCmd(t, append(args, "--out", b, "--mechanism", "piecewise")...); err != nil {
		t.Fatal(err)
	}
	read := func(dir string) runfile.LDP {
		var r runfile.LDP
		data, _ := os.ReadFile(filepath.Join(dir, "ldp.json"))
		if err := json.Unmarshal(data, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	all, one := read(a), read(b)
	if len(one.Mechanisms) != 1 || one.Mechanisms[0].Name != "piecewise" {
		t.Fatalf("--mechanism piecewise ran %+v", one.Mechanisms)
	}
	if all.Mechanisms[3].Sum != one.Mechanisms[0].Sum {
		t.Errorf("piecewise alone %+v, with the others %+v", one.Mechanisms[0].Sum, all.Mechanisms[3].Sum)
	}
	if page, _ := os.ReadFile(filepath.Join(b, "report.html")); bytes.Count(page, []byte("<svg")) != 1 {
		t.Error("a continuous mechanism alone should give one figure (no histogram)")
	}
}

// TestLDPBadFlags: each bad flag gives an error naming the flag and the
// fix, and no file is written.
func TestLDPBadFlags(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--meters", "0"}, "--meters 0: give 1 to"},
		{[]string{"--meters", "-5"}, "--meters -5"},
		{[]string{"--trials", "1"}, "--trials 1: give 2 to"},
		{[]string{"--epsilon", "0"}, "--epsilon 0: give a value in"},
		{[]string{"--epsilon", "NaN"}, "--epsilon NaN"},
		{[]string{"--epsilon", "1000"}, "--epsilon 1000"},
		{[]string{"--mechanism", "laplace"}, `"laplace" is not a mechanism; give all or a list of grr, oue, duchi, piecewise, hybrid`},
		{[]string{"--mechanism", "duchi,,oue"}, `"" is not a mechanism`},
		{[]string{"--levels", "70"}, "--levels 70 with --mechanism oue"},
		{[]string{"--levels", "1", "--mechanism", "grr"}, "grr with 1 levels"},
		{[]string{"--levels", "8", "--mechanism", "duchi"}, "--levels 8: only grr and oue take levels"},
		{[]string{"--max-kw", "-1"}, "--max-kw -1: give a positive clip bound"},
		{[]string{"--max-kw", "+Inf"}, "--max-kw +Inf"},
		{[]string{"--hour", "24"}, "--hour 24: give a clock hour in [0, 24)"},
		{[]string{"--epsilons", "1,x"}, `--epsilons "1,x": "x" is not an epsilon`},
		{[]string{"--epsilons", "0.5,-1"}, `"-1" is not an epsilon`},
		{[]string{"--workers", "-1"}, "--workers -1"},
		{[]string{"--meters", "ten"}, `invalid argument "ten" for "--meters"`},
		{[]string{"extra"}, `unknown command "extra"`},
	}
	for _, c := range cases {
		dir := filepath.Join(t.TempDir(), "out")
		_, err := runLDPCmd(t, append(c.args, "--out", dir)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.args, err, c.want)
		}
		if _, serr := os.Stat(dir); !os.IsNotExist(serr) {
			t.Errorf("%v: bad flags created %s", c.args, dir)
		}
	}
}

// TestLDPOutputFailure: an unwritable output leaves no temporary or
// partial file behind.
func TestLDPOutputFailure(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "plain")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runLDPCmd(t, "--meters", "50", "--trials", "2", "--out", file, "-q"); err == nil || !strings.Contains(err.Error(), "output directory") {
		t.Errorf("--out naming a file: %v", err)
	}
	// report.html cannot be replaced (it is a non-empty directory): the
	// command fails, and no temporary file remains.
	out := filepath.Join(dir, "out")
	if err := os.MkdirAll(filepath.Join(out, "report.html", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := runLDPCmd(t, "--meters", "50", "--trials", "2", "--out", out, "-q"); err == nil || !strings.Contains(err.Error(), "report.html") {
		t.Errorf("blocked report.html: %v", err)
	}
	ents, _ := os.ReadDir(out)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

// TestLDPReadings: ldp.json lets a third party recompute the truth and
// every estimate's error. The generator description alone regenerates the
// readings (checked against --readings' list, value for value); from the
// list, the test's own code recomputes the clipped sum and mean, the
// clipped count, every mechanism's error and the histograms' expected
// fractions (randomised rounding between levels j * max_kw / (k-1)).
// Without --readings the list is left out and the description stays.
func TestLDPReadings(t *testing.T) {
	dir := t.TempDir()
	if _, err := runLDPCmd(t, "--meters", "400", "--trials", "3", "--epsilons", "", "--max-kw", "1.5", "--seed", "5", "--readings", "--out", dir, "-q"); err != nil {
		t.Fatal(err)
	}
	type est struct {
		TruthKW    float64 `json:"truth_kw"`
		EstimateKW float64 `json:"estimate_kw"`
		ErrorKW    float64 `json:"error_kw"`
	}
	var res struct {
		Seed       uint64  `json:"seed"`
		Meters     int     `json:"meters"`
		MaxKW      float64 `json:"max_kw"`
		Population struct {
			SumKW     float64 `json:"sum_kw"`
			MeanKW    float64 `json:"mean_kw"`
			RawSumKW  float64 `json:"raw_sum_kw"`
			Clipped   int     `json:"clipped"`
			Generator struct {
				BaseKW float64   `json:"base_kw"`
				PCG    [2]uint64 `json:"pcg"`
				Rule   string    `json:"rule"`
			} `json:"generator"`
			ReadingsKW []float64 `json:"readings_kw"`
		} `json:"population"`
		Mechanisms []struct {
			Name      string `json:"name"`
			Levels    int    `json:"levels"`
			Sum       est    `json:"sum"`
			Mean      est    `json:"mean"`
			Histogram []struct {
				LevelKW float64 `json:"level_kw"`
				Truth   float64 `json:"truth"`
			} `json:"histogram"`
		} `json:"mechanisms"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "ldp.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	g := res.Population.Generator
	xs := res.Population.ReadingsKW
	if len(xs) != res.Meters || g.PCG != [2]uint64{res.Seed, 0} || !(g.BaseKW > 0) || !strings.Contains(g.Rule, "ExpFloat64") {
		t.Fatalf("%d readings for %d meters, generator %+v", len(xs), res.Meters, g)
	}
	rng := rand.New(rand.NewPCG(g.PCG[0], g.PCG[1]))
	for i, x := range xs {
		if want := g.BaseKW * (rng.ExpFloat64() + rng.ExpFloat64()) / 2; x != want {
			t.Fatalf("reading %d is %v in the file, %v from the generator's description", i, x, want)
		}
	}
	var sum, raw float64
	clipped := 0
	for _, x := range xs {
		raw += x
		sum += math.Min(x, res.MaxKW)
		if x > res.MaxKW {
			clipped++
		}
	}
	n := float64(len(xs))
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-12*(1+math.Abs(b)) }
	p := res.Population
	if !near(p.SumKW, sum) || !near(p.RawSumKW, raw) || !near(p.MeanKW, sum/n) || p.Clipped != clipped || clipped == 0 {
		t.Errorf("population sum %v, raw %v, mean %v, clipped %d; recomputed sum %v, raw %v, mean %v, clipped %d (the clip should bite at 1.5 kW)", p.SumKW, p.RawSumKW, p.MeanKW, p.Clipped, sum, raw, sum/n, clipped)
	}
	if len(res.Mechanisms) != 5 {
		t.Fatalf("%d mechanisms", len(res.Mechanisms))
	}
	for _, m := range res.Mechanisms {
		if !near(m.Sum.ErrorKW, m.Sum.EstimateKW-sum) || !near(m.Mean.ErrorKW, m.Mean.EstimateKW-sum/n) || !near(m.Sum.TruthKW, sum) {
			t.Errorf("%s: error %v (mean %v), recomputed %v (%v)", m.Name, m.Sum.ErrorKW, m.Mean.ErrorKW, m.Sum.EstimateKW-sum, m.Mean.EstimateKW-sum/n)
		}
		if m.Levels == 0 {
			continue
		}
		k := m.Levels
		step := res.MaxKW / float64(k-1)
		w := make([]float64, k)
		for _, x := range xs {
			pos := math.Min(math.Max(x, 0), res.MaxKW) / step
			a := min(int(pos), k-2)
			up := math.Min(math.Max(pos-float64(a), 0), 1)
			w[a] += 1 - up
			w[a+1] += up
		}
		for j, h := range m.Histogram {
			if !near(h.LevelKW, float64(j)*step) || math.Abs(h.Truth-w[j]/n) > 1e-12 {
				t.Errorf("%s level %d: %v kW, truth %v; recomputed %v kW, %v", m.Name, j, h.LevelKW, h.Truth, float64(j)*step, w[j]/n)
			}
		}
	}
	plain := t.TempDir()
	if _, err := runLDPCmd(t, "--meters", "50", "--trials", "2", "--epsilons", "", "--out", plain, "-q"); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(filepath.Join(plain, "ldp.json"))
	if bytes.Contains(data, []byte(`"readings_kw"`)) || !bytes.Contains(data, []byte(`"generator"`)) {
		t.Error("without --readings, ldp.json should describe the readings but not list them")
	}
}
