package sim

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
)

// TestHomesGroundTruth: with --ground-truth, home.json alone lets a third
// party recompute every attack's F1 and the attacker's F1: the test reads
// the truth and detection intervals back and scores them with its own
// code, by the rule docs/HOME.md states (per slot, per scored kind: tp,
// fp, fn; F1 = 2tp/(2tp+fp+fn); kinds neither on nor detected left out;
// the fridge not scored; macro mean; the strongest attack counts, co
// before edge before prior on ties). Without the flag none of it is
// written.
func TestHomesGroundTruth(t *testing.T) {
	homeJSON := func(edit func(*Homes)) []byte {
		t.Helper()
		h := DefaultHomes()
		h.Homes, h.NoSeries, h.TrainHomes = 6, true, 40
		edit(&h)
		doc, err := RunHomes(h)
		if err != nil {
			t.Fatal(err)
		}
		return render(t, HomeFiles(doc))["home.json"]
	}
	data := homeJSON(func(h *Homes) { h.GroundTruth = true })
	type iv map[string][][2]int
	var doc struct {
		Slots    int `json:"slots"`
		Attacker struct {
			PriorOn iv `json:"prior_on"`
		} `json:"attacker"`
		Schedulers []string `json:"schedulers"`
		HomeDays   []struct {
			ID      int `json:"id"`
			Truth   iv  `json:"truth"`
			Results map[string]struct {
				F1       float64            `json:"f1"`
				F1By     string             `json:"f1_by"`
				F1CO     float64            `json:"f1_co"`
				F1Edge   float64            `json:"f1_edge"`
				F1Prior  float64            `json:"f1_prior"`
				F1ByKind map[string]float64 `json:"f1_by_kind"`
				Detected *struct {
					CO   iv `json:"co"`
					Edge iv `json:"edge"`
				} `json:"detected"`
			} `json:"results"`
		} `json:"home_days"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	kinds := []string{"kettle", "microwave", "cooker", "washer", "dishwasher", "lighting", "tv", "water_heater"}
	slots := func(m iv, kind string) []bool {
		on := make([]bool, doc.Slots)
		prev := -1
		for _, r := range m[kind] {
			if r[0] <= prev || r[0] >= r[1] || r[1] > doc.Slots {
				t.Fatalf("%s: interval %v not ascending, disjoint and within %d slots", kind, r, doc.Slots)
			}
			for s := r[0]; s < r[1]; s++ {
				on[s] = true
			}
			prev = r[1]
		}
		return on
	}
	score := func(det, truth iv) (f1 float64, byKind map[string]float64) {
		byKind = map[string]float64{}
		sum := 0.0
		for _, k := range kinds {
			d, tr := slots(det, k), slots(truth, k)
			tp, fp, fn := 0, 0, 0
			for s := range d {
				switch {
				case d[s] && tr[s]:
					tp++
				case d[s]:
					fp++
				case tr[s]:
					fn++
				}
			}
			if tp+fp+fn == 0 {
				continue
			}
			byKind[k] = 2 * float64(tp) / float64(2*tp+fp+fn)
			sum += byKind[k]
		}
		if len(byKind) > 0 {
			f1 = sum / float64(len(byKind))
		}
		return f1, byKind
	}
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-12 }
	if len(doc.Attacker.PriorOn) == 0 {
		t.Fatal("attacker.prior_on is missing")
	}
	checked := 0
	for _, hd := range doc.HomeDays {
		if len(hd.Truth) == 0 {
			t.Fatalf("home %d: no ground truth", hd.ID)
		}
		for _, name := range doc.Schedulers {
			r := hd.Results[name]
			if r.Detected == nil {
				t.Fatalf("home %d %s: no detections", hd.ID, name)
			}
			co, coKind := score(r.Detected.CO, hd.Truth)
			ed, edKind := score(r.Detected.Edge, hd.Truth)
			pr, prKind := score(doc.Attacker.PriorOn, hd.Truth)
			best, by, byKind := co, "co", coKind
			if ed > best {
				best, by, byKind = ed, "edge", edKind
			}
			if pr > best {
				best, by, byKind = pr, "prior", prKind
			}
			if !near(co, r.F1CO) || !near(ed, r.F1Edge) || !near(pr, r.F1Prior) || !near(best, r.F1) || by != r.F1By {
				t.Errorf("home %d %s: recomputed co %v edge %v prior %v -> %v (%s); the file says %v %v %v -> %v (%s)",
					hd.ID, name, co, ed, pr, best, by, r.F1CO, r.F1Edge, r.F1Prior, r.F1, r.F1By)
			}
			if len(byKind) != len(r.F1ByKind) {
				t.Errorf("home %d %s: kinds scored %v, the file %v", hd.ID, name, byKind, r.F1ByKind)
			}
			for k, v := range byKind {
				if !near(v, r.F1ByKind[k]) {
					t.Errorf("home %d %s %s: recomputed F1 %v, the file %v", hd.ID, name, k, v, r.F1ByKind[k])
				}
			}
			checked++
		}
	}
	if checked != 30 {
		t.Fatalf("checked %d results, want 30", checked)
	}
	// Without the flag the file has none of it.
	data = homeJSON(func(h *Homes) { h.Homes = 2 })
	for _, key := range []string{`"truth"`, `"detected"`, `"prior_on"`} {
		if bytes.Contains(data, []byte(key)) {
			t.Errorf("home.json without --ground-truth contains %s", key)
		}
	}
}
