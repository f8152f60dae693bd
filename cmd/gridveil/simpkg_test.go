package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gridveil/gridveil/sim"
)

// sameFiles checks that dir holds exactly the files and a manifest, each
// byte for byte but run.json (times, and the flags only the CLI knows) and
// those named in timed (which carry measured times).
func sameFiles(t *testing.T, what, dir string, files map[string]func(io.Writer) error, timed ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != len(files)+1 { // + manifest.json
		t.Errorf("%s: the CLI wrote %d files, the package %d and a manifest", what, len(ents), len(files))
	}
	for name, write := range files {
		var want bytes.Buffer
		if err := write(&want); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v", what, err)
			continue
		}
		if name != "run.json" && !slices.Contains(timed, name) && !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%s: the CLI's %s differs from package sim's", what, name)
		}
	}
}

// TestSimIsThePackage: gridveil sim's files are package sim's for the
// same set-up: each flag reaches the field it names, and the CLI adds
// nothing to the documents but run.json's flags and times. One set of
// flags per step of the day (masking with drops, dp, the market with a
// reserve, an LDP baseline, V2G without the comparison, the privacy
// comparison, no schedules) on the small scenarios.
func TestSimIsThePackage(t *testing.T) {
	for _, c := range []struct {
		scenario string
		args     []string
		edit     func(*sim.Config)
	}{
		{"ieee13-paper", []string{"--privacy", "masking", "--mask-drop", "0.05", "--mask-threshold", "3"}, func(c *sim.Config) {
			c.Privacy.Mechanism, c.Privacy.Masking.DropRate, c.Privacy.Masking.Threshold = "masking", 0.05, 3
		}},
		{"ieee13-paper", []string{"--privacy", "dp", "--dp-epsilon", "2", "--iterations", "50"}, func(c *sim.Config) {
			c.Privacy.Mechanism, c.Privacy.DP.Epsilon, c.Privacy.Iterations = "dp", 2, 50
		}},
		{"ieee13-paper", []string{"--privacy", "obfuscation", "--obf-m", "4", "--obf-sigma", "2", "--obf-mu-max", "5", "--iterations", "30", "--dump-view", "so"}, func(c *sim.Config) {
			c.Privacy.Mechanism, c.Privacy.Obfuscation.M, c.Privacy.Obfuscation.Sigma, c.Privacy.Obfuscation.Mu[1], c.Privacy.Iterations, c.Privacy.DumpView = "obfuscation", 4, 2, 5, 30, "so"
		}},
		{"ieee13-stressed", []string{"--market", "--market-rule", "mcafee", "--market-headroom", "0.8", "--market-margin", "0.7", "--market-fee-ppm", "5000", "--market-penalty", "300"}, func(c *sim.Config) {
			c.Market = sim.Market{On: true, Rule: "mcafee", Headroom: 0.8, Margin: 0.7, FeePPM: 5000, Penalty: 300}
		}},
		{"ieee13-paper", []string{"--baseline", "ldp", "--day-epsilon", "48", "--ldp-mechanism", "piecewise", "--meters-per-bus", "150"}, func(c *sim.Config) {
			c.Baseline = sim.Baseline{Source: "ldp", DayEpsilon: 48, Mechanism: "piecewise", MetersPerBus: 150}
		}},
		{"ieee13-v2g", []string{"--v2g-compare=false", "--no-schedules", "--max-iter", "400"}, func(c *sim.Config) {
			c.V2G.Compare, c.NoSchedules, c.MaxIter = false, true, 400
		}},
		{"ieee13-paper", []string{"--privacy-compare", "--shamir-holders", "4", "--shamir-threshold", "3", "--mask-auth=false"}, func(c *sim.Config) {
			c.Privacy.Compare, c.Privacy.Shamir.Holders, c.Privacy.Shamir.Threshold, c.Privacy.Masking.Authenticate = true, 4, 3, false
		}},
	} {
		dir := t.TempDir()
		// Unconverged runs (dp, obfuscation, the capped V2G day) exit 3
		// with complete files: the comparison is of the files.
		_, _ = run(t, append([]string{"sim", "--scenario", c.scenario, "--out", dir, "-q"}, c.args...)...)
		p, m, err := sim.Load(c.scenario, 0, false, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg := sim.Defaults()
		c.edit(&cfg)
		d, err := sim.RunDay(p, m, cfg)
		if err != nil {
			t.Fatal(err)
		}
		var timed []string
		if cfg.Privacy.Compare {
			// privacy.json and the report's comparison table carry
			// measured CPU times.
			timed = []string{"privacy.json", "report.html"}
		}
		sameFiles(t, c.scenario+" "+c.args[0], dir, d.Files(sim.RunInfo{}), timed...)
	}
}
