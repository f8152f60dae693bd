package sim

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestLDPReadings: ldp.json lets a third party recompute the truth and
// every estimate's error. The generator description alone regenerates the
// readings (checked against --readings' list, value for value); from the
// list, the test's own code recomputes the clipped sum and mean, the
// clipped count, every mechanism's error and the histograms' expected
// fractions (randomised rounding between levels j * max_kw / (k-1)).
// Without --readings the list is left out and the description stays.
func TestLDPReadings(t *testing.T) {
	ldpJSON := func(edit func(*LDP)) []byte {
		t.Helper()
		c := DefaultLDP()
		c.Trials, c.Epsilons = 3, ""
		edit(&c)
		res, err := RunLDP(c)
		if err != nil {
			t.Fatal(err)
		}
		return render(t, LDPFiles(res))["ldp.json"]
	}
	data := ldpJSON(func(c *LDP) { c.Meters, c.MaxKW, c.Seed, c.Readings = 400, 1.5, 5, true })
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
	data = ldpJSON(func(c *LDP) { c.Meters, c.Trials = 50, 2 })
	if bytes.Contains(data, []byte(`"readings_kw"`)) || !bytes.Contains(data, []byte(`"generator"`)) {
		t.Error("without --readings, ldp.json should describe the readings but not list them")
	}
}
