package main

import (
	"bytes"
	"encoding/json"
	"math"
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
