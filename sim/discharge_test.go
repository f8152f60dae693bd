package sim

import (
	"bytes"
	"cmp"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gridveil/gridveil/runfile"
	"github.com/gridveil/gridveil/scenario"
)

// v2gFiles runs ieee13-v2g (with edit) and parses its instance,
// solution and discharge documents from the rendered bytes.
func v2gFiles(t *testing.T, edit func(*Config)) (map[string][]byte, *runfile.Discharge, *scenario.Solution, map[string]scenario.InstEV) {
	t.Helper()
	files := dayFiles(t, runDay(t, "ieee13-v2g", edit))
	var dis runfile.Discharge
	if err := json.Unmarshal(files["discharge.json"], &dis); err != nil {
		t.Fatalf("discharge.json: %v", err)
	}
	var sol scenario.Solution
	if err := json.Unmarshal(files["solution.json"], &sol); err != nil {
		t.Fatal(err)
	}
	var inst scenario.Instance
	if err := json.Unmarshal(files["instance.json"], &inst); err != nil {
		t.Fatal(err)
	}
	evs := map[string]scenario.InstEV{}
	for _, ev := range inst.EVs {
		evs[ev.ID] = ev
	}
	return files, &dis, &sol, evs
}

// TestDischargeOnRequest: the CA's requests, answered through auth's
// cores, give each owner's will exactly: the vehicles that agreed are
// those an independent draw of the owners' willingness says, only they
// keep a discharge limit in instance.json, and the requests' counts add
// up. The LAG's aggregate, when released, is the counts (never fewer than
// aggregate_min answers). Then, from the files alone, the settlement: the
// export per window follows from solution.json's schedules, no vehicle
// that declined exports anything, every export lies in its request's
// window, the CA billed what the meter read, and the money is the priced
// energy.
func TestDischargeOnRequest(t *testing.T) {
	p, m := load(t, "ieee13-v2g")
	_, dis, sol, evs := v2gFiles(t, nil)
	// The owners' will, drawn as the scenario promises (seed, own stream).
	rng := rand.New(rand.NewPCG(m.Seed, 0x77696c6c))
	will := map[string]bool{}
	asked := map[string]int{} // LAG -> bidirectional vehicles
	for _, ev := range p.EVs {
		if ev.PDis > 0 {
			will[ev.ID] = rng.Float64() < dis.Willing
			asked[lagID(p, &ev)]++
		}
	}
	if len(dis.Bills) != len(will) || dis.Asked != len(will) {
		t.Fatalf("%d bills, %d asked, for %d bidirectional vehicles", len(dis.Bills), dis.Asked, len(will))
	}
	agreed, declined := 0, 0
	agreedAt := map[string]int{}
	bills := map[string]runfile.DischargeBill{}
	for _, b := range dis.Bills {
		bills[b.EV] = b
		if b.Agreed != will[b.EV] {
			t.Errorf("%s: owner's will %v, the day recorded agreed %v", b.EV, will[b.EV], b.Agreed)
		}
		ev := evs[b.EV]
		if b.Agreed {
			agreed++
			agreedAt[b.LAG]++
			if ev.PDis == 0 {
				t.Errorf("%s agreed but has no discharge limit in instance.json", b.EV)
			}
		} else {
			declined++
			if ev.PDis != 0 || ev.Capacity == 0 {
				t.Errorf("%s declined: instance.json must keep its battery with pdis 0, has pdis %v capacity %v", b.EV, ev.PDis, ev.Capacity)
			}
		}
	}
	if agreed == 0 || declined == 0 || dis.Agreed != agreed {
		t.Fatalf("%d agreed, %d declined (file: %d agreed): the test needs both", agreed, declined, dis.Agreed)
	}
	for _, r := range dis.Requests {
		if r.Asked != asked[r.LAG] || r.Answered != r.Asked || r.Agreed != agreedAt[r.LAG] || r.StartSlot != 0 || r.EndSlot != len(sol.Aggregate) {
			t.Errorf("request at %s: %+v; want %d asked and answered, %d agreed, window 0-%d", r.LAG, r, asked[r.LAG], agreedAt[r.LAG], len(sol.Aggregate))
		}
		switch {
		case r.LAGAnswers == nil && r.Answered >= dis.AggregateMin:
			t.Errorf("%s: %d answers and no aggregate for the LAG", r.LAG, r.Answered)
		case r.LAGAnswers != nil:
			// The CA releases an aggregate each time aggregate_min answers
			// are new since the last, so the LAG's may cover a prefix of
			// the answers, never one answer more than the previous.
			n, w := *r.LAGAnswers, *r.LAGAgreedW
			if n < dis.AggregateMin || n > r.Answered || w%int64(r.PowerW) != 0 || w/int64(r.PowerW) > int64(min(n, r.Agreed)) || w/int64(r.PowerW) < int64(r.Agreed-(r.Answered-n)) {
				t.Errorf("%s: the LAG's aggregate %d answers / %d W is not a prefix of the %d answers with %d agreed x %d W", r.LAG, n, w, r.Answered, r.Agreed, r.PowerW)
			}
		}
	}
	// Settlement, from solution.json's schedules.
	spw := dis.WindowSlots
	var export, metered, paid, toGrid int64
	for id, x := range sol.Schedules {
		b, billed := bills[id]
		wh := make([]float64, (len(x)+spw-1)/spw)
		for tt, v := range x {
			if v < 0 {
				if !billed || !b.Agreed {
					t.Fatalf("%s discharges %.3f kW in slot %d without an agreement", id, -v, tt)
				}
				wh[tt/spw] += -v * 0.25 * 1000
			}
		}
		if !billed {
			continue
		}
		var m int64
		for w := range wh {
			if int64(math.Round(wh[w])) != b.ExportWh[w] {
				t.Fatalf("%s window %d: export %d Wh in the file, %.3f from the schedule", id, w, b.ExportWh[w], wh[w])
			}
			if b.MeteredWh[w] > b.ExportWh[w] || b.MeteredWh[w] < b.ExportWh[w]/2 {
				t.Fatalf("%s window %d: metered %d Wh against %d scheduled", id, w, b.MeteredWh[w], b.ExportWh[w])
			}
			export += b.ExportWh[w]
			m += b.MeteredWh[w]
		}
		if b.Billed != -m || b.ToGridWh+b.V2VWh != m || b.GridPaid != b.ToGridWh*dis.Price/1000 {
			t.Fatalf("%s: billed %d, metered %d, to grid %d + V2V %d, paid %d at %d", id, b.Billed, m, b.ToGridWh, b.V2VWh, b.GridPaid, dis.Price)
		}
		metered += m
		paid += b.GridPaid
		toGrid += b.ToGridWh
	}
	if export == 0 || export != dis.ScheduledWh || metered != dis.ExportWh || paid != dis.GridPaid || toGrid != dis.ToGridWh || dis.V2VWh != 0 || dis.Mode != "centralized" {
		t.Fatalf("totals: scheduled %d/%d, metered %d/%d, paid %d/%d, to grid %d/%d, v2v %d, mode %s", export, dis.ScheduledWh, metered, dis.ExportWh, paid, dis.GridPaid, toGrid, dis.ToGridWh, dis.V2VWh, dis.Mode)
	}
	// Discharged energy in solution.json's v2g object is the schedules'.
	if math.Abs(sol.V2G.DischargedKWh*1000-float64(export)) > float64(len(dis.Bills)*len(sol.Aggregate)) {
		t.Fatalf("solution.json: %.3f kWh discharged, the bills %d Wh", sol.V2G.DischargedKWh, export)
	}
}

// TestV2VFromMarketFile re-computes every V2V reverse auction of a
// market day from market.json alone, with code of its own, and checks
// the awards, the penalties against the metered deliveries, the ledger's
// transfers and every account's final balance on the V2V chain; and that
// the energy delivered V2V is what discharge.json settles as V2V.
func TestV2VFromMarketFile(t *testing.T) {
	files, dis, _, _ := v2gFiles(t, func(c *Config) { c.Market.On = true })
	var mf struct {
		V2V *runfile.V2V `json:"v2v"`
	}
	if err := json.Unmarshal(files["market.json"], &mf); err != nil {
		t.Fatal(err)
	}
	v := mf.V2V
	if v == nil || len(v.Windows) == 0 || dis.Mode != "distributed" {
		t.Fatalf("no V2V trading in market.json (mode %s)", dis.Mode)
	}
	balance := map[string]int64{}
	opening := map[string]int64{}
	for _, a := range v.Accounts {
		balance[a.ID], opening[a.ID] = a.Opening, a.Opening
	}
	// The sellers' meters, as discharge.json has them, per LAG and window.
	meters := map[string][]int64{}
	for _, b := range dis.Bills {
		for w, m := range b.MeteredWh {
			if m > 0 {
				k := b.LAG + "/" + string(rune('A'+w))
				meters[k] = append(meters[k], m)
			}
		}
	}
	var delivered, short, penalties int64
	for _, w := range v.Windows {
		left := map[string]int64{}
		price := map[string]int64{}
		seq := map[string]uint64{}
		for _, o := range w.Offers {
			left[o.ID], price[o.ID], seq[o.ID] = o.Qty, o.Price, o.Seq
		}
		awarded := map[string]int64{}
		var txs []runfile.V2VTx
		for _, b := range w.Buyers {
			// Cheapest first, ties by sequence; a uniform price: the
			// partly taken winner's ask, else the first rejected ask, else
			// the limit.
			var ids []string
			for id, q := range left {
				if q > 0 && price[id] <= v.Limit {
					ids = append(ids, id)
				}
			}
			slices.SortFunc(ids, func(a, b string) int {
				if c := cmp.Compare(price[a], price[b]); c != 0 {
					return c
				}
				return cmp.Compare(seq[a], seq[b])
			})
			need := b.NeedWh
			var want []runfile.V2VAward
			k := 0
			for ; k < len(ids) && need > 0; k++ {
				q := min(need, left[ids[k]])
				want = append(want, runfile.V2VAward{Seller: ids[k], Wh: q})
				need -= q
			}
			pr := v.Limit
			if len(want) > 0 && want[len(want)-1].Wh < left[ids[k-1]] {
				pr = price[ids[k-1]]
			} else if k < len(ids) {
				pr = price[ids[k]]
			}
			for i := range want {
				want[i].Price = pr
				left[want[i].Seller] -= want[i].Wh
				awarded[want[i].Seller] += want[i].Wh
				amount := (want[i].Wh*pr + 999) / 1000
				balance[b.ID] -= amount
				balance[want[i].Seller] += amount
				if amount > 0 {
					txs = append(txs, runfile.V2VTx{Kind: "award", From: b.ID, To: want[i].Seller, Wh: want[i].Wh, Amount: amount})
				}
			}
			if len(want) == 0 {
				want = []runfile.V2VAward{}
			}
			if !slices.Equal(want, b.Awards) {
				t.Fatalf("window %d at %s, buyer %s: awards %+v, re-computed %+v", w.Window, w.LAG, b.ID, b.Awards, want)
			}
		}
		for _, d := range w.Delivery {
			got := min(d.MeteredWh, awarded[d.Seller])
			s := awarded[d.Seller] - got
			pen := (s*v.Penalty + 999) / 1000
			if d.AwardedWh != awarded[d.Seller] || d.DeliveredWh != got || d.ShortWh != s || d.Penalty != pen {
				t.Fatalf("window %d, %s: delivery %+v; re-computed awarded %d, delivered %d, short %d, penalty %d", w.Window, d.Seller, d, awarded[d.Seller], got, s, pen)
			}
			k := w.LAG + "/" + string(rune('A'+w.Window))
			if i := slices.Index(meters[k], d.MeteredWh); i < 0 {
				t.Fatalf("window %d, %s: metered %d Wh is no meter reading of discharge.json at %s", w.Window, d.Seller, d.MeteredWh, w.LAG)
			} else {
				meters[k] = slices.Delete(meters[k], i, i+1)
			}
			balance[d.Seller] -= pen
			balance["grid"] += pen
			if pen > 0 {
				txs = append(txs, runfile.V2VTx{Kind: "penalty", From: d.Seller, To: "grid", Wh: s, Amount: pen})
			}
			delivered += got
			short += s
			penalties += pen
		}
		if !slices.Equal(txs, w.Txs) {
			t.Fatalf("window %d at %s: ledger transactions %+v, re-computed %+v", w.Window, w.LAG, w.Txs, txs)
		}
	}
	for _, a := range v.Accounts {
		if a.Final != balance[a.ID] {
			t.Fatalf("account %s: the ledger holds %d, the auctions and penalties give %d (opening %d)", a.ID, a.Final, balance[a.ID], opening[a.ID])
		}
	}
	if delivered == 0 || delivered != v.Totals.DeliveredWh || delivered != dis.V2VWh || short != v.Totals.ShortWh || penalties != v.Totals.Penalties {
		t.Fatalf("delivered %d (file %d, discharge.json %d), short %d/%d, penalties %d/%d", delivered, v.Totals.DeliveredWh, dis.V2VWh, short, v.Totals.ShortWh, penalties, v.Totals.Penalties)
	}
	if short == 0 {
		t.Fatal("no seller fell short: the penalties were not exercised")
	}
	if v.Blocks == 0 || len(v.AppHash) != 64 {
		t.Fatalf("%d blocks, app hash %q", v.Blocks, v.AppHash)
	}
}

// TestDischargeBadInput: bad settings are refused naming the flag; a
// vehicle that declined but could discharge, or discharges anyway, is
// refused naming the vehicle; a day without bidirectional vehicles sends
// no request and writes no discharge.json; a day in which nobody agrees
// discharges nothing and settles nothing.
func TestDischargeBadInput(t *testing.T) {
	p, m := load(t, "ieee13-v2g")
	for _, c := range []struct {
		edit func(*V2G)
		want string
	}{
		{func(v *V2G) { v.Willing = 1.5 }, "--v2g-willing 1.5"},
		{func(v *V2G) { v.Willing = math.NaN() }, "--v2g-willing NaN"},
		{func(v *V2G) { v.Price = -1 }, "--v2g-price -1"},
	} {
		v := Defaults().V2G
		c.edit(&v)
		if _, _, err := v.request(p, m, false); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want an error naming %q, got %v", c.want, err)
		}
	}
	v := Defaults().V2G
	q, st, err := v.request(p, m, false)
	if err != nil {
		t.Fatal(err)
	}
	dec := -1
	for i, ok := range st.agreed {
		if !ok && (dec < 0 || i < dec) {
			dec = i
		}
	}
	if dec < 0 {
		t.Fatal("no vehicle declined")
	}
	bad := *q
	bad.EVs = slices.Clone(q.EVs)
	bad.EVs[dec].PDis = 3
	if err := st.checkAgreed(&bad); err == nil || !strings.Contains(err.Error(), q.EVs[dec].ID) || !strings.Contains(err.Error(), "did not agree") {
		t.Errorf("a decliner with a discharge limit: %v", err)
	}
	x := make([]float64, p.Slots)
	x[5] = -2
	if _, err := st.exports(q, dec, x); err == nil || !strings.Contains(err.Error(), q.EVs[dec].ID) || !strings.Contains(err.Error(), "without agreeing") {
		t.Errorf("a decliner's export: %v", err)
	}

	// No bidirectional vehicle: no request, no file.
	if files := dayFiles(t, runDay(t, "ieee13-paper", func(c *Config) { c.Market.On = true })); files["discharge.json"] != nil || bytes.Contains(files["market.json"], []byte(`"v2v"`)) {
		t.Error("ieee13-paper (no battery vehicles) wrote discharge.json or a v2v section")
	}
	// Nobody willing: every request answered, none agreed, nothing moves.
	files, dis, sol, _ := v2gFiles(t, func(c *Config) { c.V2G.Willing = 0; c.Market.On = true })
	if dis.Agreed != 0 || dis.Asked == 0 || dis.ExportWh != 0 || dis.GridPaid != 0 || sol.V2G.Bidirectional != 0 {
		t.Errorf("nobody willing: %d of %d agreed, %d Wh exported, %d paid, %d bidirectional", dis.Agreed, dis.Asked, dis.ExportWh, dis.GridPaid, sol.V2G.Bidirectional)
	}
	var mf struct {
		V2V *runfile.V2V `json:"v2v"`
	}
	if err := json.Unmarshal(files["market.json"], &mf); err != nil || mf.V2V == nil || len(mf.V2V.Windows) != 0 || mf.V2V.Totals != (runfile.V2VWindowTotal{}) {
		t.Errorf("nobody willing: market.json's v2v section is not an empty day (%v)", err)
	}
}
