package sim

import (
	"bytes"
	"strings"
	"testing"
)

// TestRunDayDeterministic: the same problem and set-up give the same
// documents byte for byte, whatever the number of workers: every file but
// run.json (which holds times) of a masking day with dropped messages and
// a market, and of an obfuscation day with the SO's view dumped, each run
// on one worker, on two, and on one again. (A masking day's so_view.json
// is left out: its key pairs and self-mask seeds come from crypto/rand.)
func TestRunDayDeterministic(t *testing.T) {
	for name, edit := range map[string]func(*Config){
		"masking": func(c *Config) {
			c.Privacy.Mechanism, c.Privacy.Masking.DropRate = "masking", 0.05
			c.Market.On = true
		},
		"obfuscation": func(c *Config) {
			c.Privacy.Mechanism, c.Privacy.Iterations, c.Privacy.DumpView = "obfuscation", 40, "so"
		},
		// Discharge requests through auth (fresh keys from crypto/rand
		// every run) and V2V trading: their documents depend on the seed
		// alone.
		"v2g": func(c *Config) { c.Market.On = true },
	} {
		scen := map[bool]string{true: "ieee13-v2g", false: "ieee13-paper"}[name == "v2g"]
		day := func(workers int) map[string][]byte {
			d := runDay(t, scen, func(c *Config) { edit(c); c.Workers = workers })
			return dayFiles(t, d)
		}
		ref := day(1)
		want := []string{"instance.json", "solution.json", "report.html", "run.json", map[string]string{"masking": "market.json", "obfuscation": "so_view.json", "v2g": "discharge.json"}[name]}
		for _, f := range want {
			if len(ref[f]) == 0 {
				t.Fatalf("%s: the day wrote no %s", name, f)
			}
		}
		for i, workers := range []int{2, 1} {
			got := day(workers)
			if len(got) != len(ref) {
				t.Fatalf("%s: run %d on %d workers wrote %d files, the first %d", name, i+2, workers, len(got), len(ref))
			}
			for f, data := range ref {
				if f != "run.json" && !bytes.Equal(got[f], data) {
					t.Errorf("%s: run %d on %d workers: %s differs from the first run's", name, i+2, workers, f)
				}
			}
		}
	}
}

// TestRunDayRefuses: a set-up the day cannot run is refused with the flag
// that sets it named, before any work.
func TestRunDayRefuses(t *testing.T) {
	p, m := load(t, "ieee13-paper")
	for _, c := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Workers = -1 }, "--workers -1"},
		{func(c *Config) { c.MaxIter = 0 }, "--max-iter 0"},
		{func(c *Config) { c.Privacy.Iterations = 0 }, "--iterations 0"},
		{func(c *Config) { c.Privacy.DumpView = "lag" }, `--dump-view "lag"`},
		{func(c *Config) { c.Privacy.Mechanism = "rot13" }, `--privacy "rot13"`},
		{func(c *Config) { c.Baseline.Source, c.Baseline.Epsilon, c.Privacy.Mechanism = "ldp", 1, "masking" }, "--baseline ldp runs with --privacy none"},
		{func(c *Config) { c.Baseline.Source = "ldp" }, "exactly one of --epsilon"},
		{func(c *Config) { c.Market.On, c.Market.Rule = true, "vickrey" }, "--market-rule"},
	} {
		cfg := Defaults()
		c.edit(&cfg)
		if _, err := RunDay(p, m, cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v", c.want, err)
		}
	}
	share := 1.5
	if _, _, err := Load("ieee13-v2g", 0, false, 0, &share); err == nil || !strings.Contains(err.Error(), "--v2g-share 1.5") {
		t.Errorf("v2g share 1.5: %v", err)
	}
	share = 0.5
	if _, _, err := Load("out/instance.json", 0, false, 0, &share); err == nil || !strings.Contains(err.Error(), "do not apply to an instance.json") {
		t.Errorf("v2g share with an instance: %v", err)
	}
}
