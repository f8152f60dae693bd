package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSimPrivacyCompare: privacy.json lists every mechanism on the same
// instance; the exact ones reach none's optimum, masking leaves the curious
// SO with the bus average, and obfuscation leaves it within sigma/sqrt(m),
// the paper's omitted case.
func TestSimPrivacyCompare(t *testing.T) {
	dir := t.TempDir()
	if _, err := run(t, "sim", "--privacy-compare", "--out", dir, "-q"); err != nil {
		t.Fatal(err)
	}
	var pj struct {
		Schema     string `json:"schema"`
		Mechanisms []struct {
			Mechanism string             `json:"mechanism"`
			Params    map[string]float64 `json:"params"`
			Converged bool               `json:"converged"`
			Deviation float64            `json:"deviation_kw"`
			Bytes     float64            `json:"bytes_per_ev_iteration"`
			CPU       float64            `json:"cpu_ns_per_ev_iteration"`
			Attacks   struct {
				RMSE    map[string]float64 `json:"rmse_kw"`
				Prior   float64            `json:"prior_rmse_kw"`
				BusMean float64            `json:"bus_mean_rmse_kw"`
			} `json:"attacks"`
		} `json:"mechanisms"`
	}
	readJSON(t, filepath.Join(dir, "privacy.json"), &pj)
	seen := map[string]bool{}
	for _, m := range pj.Mechanisms {
		seen[m.Mechanism] = true
		if m.Bytes <= 0 || m.CPU <= 0 || m.Attacks.Prior <= 0 {
			t.Errorf("%s: bytes %v, CPU %v, prior %v: every row needs its costs and the prior", m.Mechanism, m.Bytes, m.CPU, m.Attacks.Prior)
		}
		switch m.Mechanism {
		case "masking", "shamir":
			if !m.Converged || m.Deviation > 1e-6 {
				t.Errorf("%s: converged %v, deviation %g kW from none's optimum", m.Mechanism, m.Converged, m.Deviation)
			}
			if so := m.Attacks.RMSE["so"]; so < 0.999*m.Attacks.BusMean {
				t.Errorf("%s: the curious SO (%.3f kW) beats the bus average (%.3f kW)", m.Mechanism, so, m.Attacks.BusMean)
			}
		case "obfuscation":
			want := m.Params["sigma_kw"] / math.Sqrt(m.Params["m"])
			if so := m.Attacks.RMSE["so"]; math.Abs(so-want) > 0.1*want {
				t.Errorf("obfuscation: curious SO's RMSE %.3f kW, want sigma/sqrt(m) = %.3f within 10%%", so, want)
			}
		}
	}
	for _, name := range []string{"none", "obfuscation", "masking", "shamir", "dp"} {
		if !seen[name] {
			t.Errorf("privacy.json lacks %s", name)
		}
	}
}

// TestSimDumpViewMasking: so_view.json holds everything the SO used, and
// nothing is missing: from the file alone, the reports the sum counts, less
// their corrections and their self-masks (C2SP chacha8rand keyed by the
// seed), give every bus sum. That is the check that anyone can run an
// attack on exactly the SO's view.
func TestSimDumpViewMasking(t *testing.T) {
	dir := t.TempDir()
	_, err := run(t, "sim", "--privacy", "masking", "--mask-drop", "0.1", "--max-iter", "30", "--dump-view", "so", "--out", dir, "-q")
	var ee *exitError
	if err != nil && !(errors.As(err, &ee) && ee.code == 3) {
		t.Fatal(err)
	}
	var v struct {
		Schema  string               `json:"schema"`
		Slots   int                  `json:"slots"`
		BusSums map[string][]float64 `json:"bus_sums_kw"`
		Reports []struct {
			Bus        string     `json:"bus"`
			Words      [][]uint64 `json:"words"`
			PublicKey  string     `json:"public_key"`
			Seed       string     `json:"self_mask_seed"`
			Correction []uint64   `json:"correction"`
			InSum      *bool      `json:"in_sum"`
		} `json:"reports"`
	}
	readJSON(t, filepath.Join(dir, "so_view.json"), &v)
	if v.Schema != "gridveil/so-view/v1" || len(v.Reports) != 84 {
		t.Fatalf("so_view.json: schema %q, %d vehicles", v.Schema, len(v.Reports))
	}
	totals := map[string][]uint64{}
	lost, corrected, checked := 0, 0, 0
	for _, r := range v.Reports {
		if k, err := hex.DecodeString(r.PublicKey); err != nil || len(k) != 32 || r.InSum == nil {
			t.Fatalf("vehicle at %s: public key %q, in_sum %v", r.Bus, r.PublicKey, r.InSum)
		}
		if len(r.Words) == 0 {
			lost++
		}
		if r.Correction != nil {
			corrected++
		}
		if !*r.InSum {
			continue
		}
		seed, err := hex.DecodeString(r.Seed)
		if err != nil || len(seed) != 16 || len(r.Words) != 1 {
			t.Fatalf("a counted vehicle at %s lacks its seed (%q) or report", r.Bus, r.Seed)
		}
		var key [32]byte
		copy(key[:], seed)
		prg := rand.NewChaCha8(key)
		tot := totals[r.Bus]
		if tot == nil {
			tot = make([]uint64, v.Slots)
			totals[r.Bus] = tot
		}
		for tt, w := range r.Words[0] {
			w -= prg.Uint64()
			if r.Correction != nil {
				w -= r.Correction[tt]
			}
			tot[tt] += w
		}
	}
	for bus, tot := range totals {
		for tt, w := range tot {
			if got := float64(int64(w)) / (1 << 32); math.Abs(got-v.BusSums[bus][tt]) > 1e-9 {
				t.Fatalf("bus %s slot %d: the file's reports give %v kW, its bus sum says %v", bus, tt, got, v.BusSums[bus][tt])
			}
		}
		checked++
	}
	if lost == 0 || corrected == 0 || checked == 0 {
		t.Fatalf("%d lost reports, %d corrections, %d buses checked: the run should show all three", lost, corrected, checked)
	}
}

// readJSON decodes the JSON file at path into v, failing the test on any
// error.
func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestBenchPrivacy: one row per mechanism and size, none the reference,
// and bad input named.
func TestBenchPrivacy(t *testing.T) {
	out, err := run(t, "bench", "privacy", "--evs", "300", "--mechanisms", "none,masking-single,dp")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.Contains(lines[1], "none") || !strings.HasSuffix(lines[1], "1.00") ||
		!strings.Contains(lines[2], "masking-single") || !strings.Contains(lines[3], "dp") {
		t.Fatalf("bench privacy printed:\n%s", out)
	}
	for _, bad := range [][]string{{"--evs", "ten"}, {"--mechanisms", "none,rot13"}} {
		if _, err := run(t, append([]string{"bench", "privacy"}, bad...)...); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("bench privacy %v: %v, want an error naming %s", bad, err, bad[0])
		}
	}
}

// TestSimPrivacyBadInput: bad mechanism parameters are refused with an
// error that names them, before any file is written.
func TestSimPrivacyBadInput(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--privacy", "rot13"}, "rot13"},
		{[]string{"--privacy", "masking", "--mask-drop", "1.5"}, "drop rate 1.5"},
		{[]string{"--privacy", "masking", "--mask-threshold", "9"}, "threshold 9"},
		{[]string{"--privacy", "none", "--dump-view", "ev"}, `--dump-view "ev"`},
	}
	for i, c := range cases {
		out := filepath.Join(dir, string(rune('a'+i)))
		_, err := run(t, append([]string{"sim", "-q", "--out", out}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one naming %q", c.args, err, c.want)
		}
		if ents, _ := os.ReadDir(out); len(ents) != 0 {
			t.Errorf("%v: bad input left files in %s", c.args, out)
		}
	}
}
