package sim

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"
)

// This file is a third party's audit of market.json: it reads the file
// alone, with its own types, and re-derives every window's initial rights,
// auction matches, prices, security-check refusals, McAfee reduction, P2P
// contracts, fees, penalties and balances from the rules docs/LEDGER.md
// states. It calls nothing of package market or ledger, so a clearing bug
// and a file that does not say enough both show up as a failed audit.

type auditFile struct {
	Schema string `json:"schema"`
	Day    struct {
		Rule   string `json:"rule"`
		Params struct {
			FeePPM  int64 `json:"fee_ppm"`
			Penalty int64 `json:"penalty_per_kwh"`
			Levels  int   `json:"reputation_levels"`
			Opening int64 `json:"opening_balance"`
			Grid    *struct {
				SBase int64 `json:"s_base_kva"`
				Buses []struct {
					Name   string `json:"name"`
					Parent int    `json:"parent"`
					R      int64  `json:"r_micro"`
				} `json:"buses"`
			} `json:"grid"`
		} `json:"params"`
		Stations []struct {
			Name    string `json:"name"`
			Bus     string `json:"bus"`
			Balance int64  `json:"balance"`
		} `json:"stations"`
		Balances map[string]int64 `json:"balances"`
		GridFees int64            `json:"grid_fees"`
		Income   auditIncome      `json:"income"`
		Windows  []auditWindow    `json:"windows"`
	} `json:"day"`
}

type auditIncome struct {
	TradeFees  int64 `json:"trade_fees"`
	Congestion int64 `json:"congestion_fees"`
	Spread     int64 `json:"spread"`
	Penalties  int64 `json:"penalties"`
}

type auditTrade struct {
	Buy         string `json:"buy_order"`
	Sell        string `json:"sell_order"`
	Buyer       string `json:"buyer"`
	Seller      string `json:"seller"`
	Wh          int64  `json:"wh"`
	BuyerPrice  int64  `json:"buyer_price"`
	SellerPrice int64  `json:"seller_price"`
	// refusals only
	Bus    string `json:"bus"`
	Before int64  `json:"drop_before_npu2"`
	After  int64  `json:"drop_after_npu2"`
	Limit  int64  `json:"headroom_npu2"`
	Reason string `json:"reason"`
}

type auditWindow struct {
	Index    int              `json:"index"`
	Demand   int64            `json:"demand_wh"`
	Margin   int64            `json:"margin_wh"`
	RhoPPM   *int64           `json:"rho_ppm"`
	Headroom map[string]int64 `json:"headroom_npu2"`
	Fee      map[string]int64 `json:"congestion_fee"`
	Rights   []struct {
		Station   string `json:"station"`
		Demand    int64  `json:"demand_wh"`
		Initial   int64  `json:"initial_wh"`
		Final     int64  `json:"final_wh"`
		Delivered int64  `json:"delivered_wh"`
		Penalty   int64  `json:"penalty"`
	} `json:"rights"`
	Book []struct {
		ID      string `json:"id"`
		Station string `json:"station"`
		Seq     uint64 `json:"seq"`
		Side    string `json:"side"`
		Price   int64  `json:"price"`
		Wh      int64  `json:"wh"`
	} `json:"book"`
	Trades  int          `json:"trades"`
	Failed  int          `json:"failed_security_checks"`
	Auction []auditTrade `json:"auction_trades"`
	Refused []auditTrade `json:"refused"`
	Reduced []struct {
		Order string `json:"order"`
		Wh    int64  `json:"wh"`
	} `json:"reduced"`
	Volume int64 `json:"volume_wh"`
	Price  int64 `json:"price"`
	P2P    []struct {
		Buy     string `json:"buy_order"`
		Sell    string `json:"sell_order"`
		Buyer   string `json:"buyer"`
		Seller  string `json:"seller"`
		Wh      int64  `json:"wh"`
		Price   int64  `json:"price"`
		Settled bool   `json:"settled"`
		Refused string `json:"refused"`
	} `json:"p2p"`
	Contracts int         `json:"p2p_contracts"`
	P2PWh     int64       `json:"p2p_wh"`
	Income    auditIncome `json:"income"`
}

// aOrder is an order as the auditor ranks it.
type aOrder struct {
	id, station string
	buy         bool
	price, qty  int64
	seq         uint64
}

// aMatch is a fill the auditor derives.
type aMatch struct {
	buy, sell   *aOrder
	qty, bp, sp int64
}

// priceOfUnit is the price of the u-th unit (1-based) of a ranked side.
func priceOfUnit(side []*aOrder, u int64) (int64, *aOrder, bool) {
	for _, o := range side {
		if u <= o.qty {
			return o.price, o, true
		}
		u -= o.qty
	}
	return 0, nil, false
}

// greedy fills bids against asks by price-time priority: the best bid
// with something left takes the best ask it crosses from another station,
// until the volume cap (cap < 0: none). left holds what each order has.
func greedy(bids, asks []*aOrder, left map[*aOrder]int64, cap int64) []aMatch {
	var out []aMatch
	var vol int64
	for {
		var b, a *aOrder
		for _, x := range bids {
			if left[x] == 0 {
				continue
			}
			for _, y := range asks {
				if left[y] > 0 && y.station != x.station && y.price <= x.price {
					b, a = x, y
					break
				}
			}
			if b != nil {
				break
			}
		}
		if b == nil || cap >= 0 && vol >= cap {
			return out
		}
		q := min(left[b], left[a])
		if cap >= 0 {
			q = min(q, cap-vol)
		}
		out = append(out, aMatch{buy: b, sell: a, qty: q, bp: b.price, sp: a.price})
		left[b] -= q
		left[a] -= q
		vol += q
	}
}

func ceilDiv(x, d int64) int64 { return (x + d - 1) / d }

// auditMarket re-derives a market.json and reports the first discrepancy.
func auditMarket(data []byte) error {
	var f auditFile
	if err := json.Unmarshal(data, &f); err != nil {
		return err
	}
	d := &f.Day
	p := d.Params
	if p.Levels != 0 {
		return fmt.Errorf("reputation levels %d: this audit covers unrestricted matching only", p.Levels)
	}
	if p.Opening <= 0 || len(d.Stations) == 0 {
		return fmt.Errorf("the file states no opening balance or stations")
	}
	busOf := map[string]string{}
	balance := map[string]int64{}
	for _, s := range d.Stations {
		busOf[s.Name], balance[s.Name] = s.Bus, p.Opening
	}
	var busIdx map[string]int
	if p.Grid != nil {
		busIdx = map[string]int{}
		for i, b := range p.Grid.Buses {
			busIdx[b.Name] = i
		}
	}
	drops := func(watts []int64) []int64 {
		g := p.Grid
		n := len(g.Buses)
		flow := append([]int64(nil), watts...)
		for i := n - 1; i > 0; i-- {
			flow[g.Buses[i].Parent] += flow[i]
		}
		out := make([]int64, n)
		for i := 1; i < n; i++ {
			out[i] = out[g.Buses[i].Parent] + 2*g.Buses[i].R*flow[i]/g.SBase
		}
		return out
	}
	var total auditIncome
	for _, w := range d.Windows {
		fail := func(format string, a ...any) error {
			return fmt.Errorf("window %d: %s", w.Index, fmt.Sprintf(format, a...))
		}
		if w.RhoPPM == nil {
			return fail("no rho_ppm: the satisfaction rate as the ledger computed it is missing")
		}
		// Rights: rho = min(1, margin / demand) in ppm, floor(rho d) each.
		var dem int64
		for _, r := range w.Rights {
			dem += r.Demand
		}
		if dem != w.Demand {
			return fail("stations' demand sums to %d, demand_wh %d", dem, w.Demand)
		}
		rho := int64(0)
		if dem > 0 {
			rho = 1_000_000
			if w.Margin < dem {
				rho = w.Margin * 1_000_000 / dem
			}
		}
		if rho != *w.RhoPPM {
			return fail("rho_ppm %d, margin %d over demand %d gives %d", *w.RhoPPM, w.Margin, dem, rho)
		}
		rights := map[string]int64{}
		for _, r := range w.Rights {
			if want := r.Demand * rho / 1_000_000; r.Initial != want {
				return fail("%s: initial rights %d, floor(rho x demand) = %d", r.Station, r.Initial, want)
			}
			rights[r.Station] = r.Initial
		}
		// The book, ranked by price-time priority.
		var bids, asks []*aOrder
		byID := map[string]*aOrder{}
		sold := map[string]int64{}
		for _, o := range w.Book {
			if _, ok := busOf[o.Station]; !ok || o.ID == "" || o.Wh <= 0 || byID[o.ID] != nil {
				return fail("order %+v: no known owner, no id, a repeated id or no energy", o)
			}
			x := &aOrder{id: o.ID, station: o.Station, buy: o.Side == "buy", price: o.Price, qty: o.Wh, seq: o.Seq}
			byID[o.ID] = x
			if x.buy {
				bids = append(bids, x)
			} else {
				asks = append(asks, x)
				sold[o.Station] += o.Wh
			}
		}
		for st, q := range sold {
			if q > rights[st] {
				return fail("%s offers %d Wh holding %d", st, q, rights[st])
			}
		}
		sort.Slice(bids, func(i, j int) bool {
			return bids[i].price > bids[j].price || bids[i].price == bids[j].price && bids[i].seq < bids[j].seq
		})
		sort.Slice(asks, func(i, j int) bool {
			return asks[i].price < asks[j].price || asks[i].price == asks[j].price && asks[i].seq < asks[j].seq
		})
		// k: the last unit whose bid still meets its ask (binary search on
		// the two monotone staircases).
		lo, hi := int64(0), int64(0)
		for _, o := range bids {
			hi += o.qty
		}
		var askWh int64
		for _, o := range asks {
			askWh += o.qty
		}
		hi = min(hi, askWh)
		for lo < hi {
			mid := (lo + hi + 1) / 2
			b, _, _ := priceOfUnit(bids, mid)
			a, _, _ := priceOfUnit(asks, mid)
			if b >= a {
				lo = mid
			} else {
				hi = mid - 1
			}
		}
		k := lo
		left := map[*aOrder]int64{}
		for _, o := range append(append([]*aOrder(nil), bids...), asks...) {
			left[o] = o.qty
		}
		var matches []aMatch
		var price int64
		reduced := map[string]int64{}
		if k > 0 {
			bk, bo, _ := priceOfUnit(bids, k)
			ak, ao, _ := priceOfUnit(asks, k)
			keep := func(minBid, maxAsk int64) ([]*aOrder, []*aOrder) {
				var eb, ea []*aOrder
				for _, o := range bids {
					if o.price >= minBid {
						eb = append(eb, o)
					}
				}
				for _, o := range asks {
					if o.price <= maxAsk {
						ea = append(ea, o)
					}
				}
				return eb, ea
			}
			switch d.Rule {
			case "uniform":
				u := (bk + ak) / 2
				eb, ea := keep(u, u)
				matches = greedy(eb, ea, left, -1)
				for i := range matches {
					matches[i].bp, matches[i].sp = u, u
				}
				if len(matches) > 0 {
					price = u
				}
			case "pay-as-bid":
				matches = greedy(bids, asks, left, -1)
			case "mcafee":
				buyP, sellP, cap := bk, ak, k-1
				b1, _, okb := priceOfUnit(bids, k+1)
				a1, _, oka := priceOfUnit(asks, k+1)
				if p0 := (b1 + a1) / 2; okb && oka && ak <= p0 && p0 <= bk {
					buyP, sellP, cap = p0, p0, k
				} else {
					reduced[bo.id]++
					reduced[ao.id]++
				}
				eb, ea := keep(bk, ak)
				matches = greedy(eb, ea, left, cap)
				for i := range matches {
					matches[i].bp, matches[i].sp = buyP, sellP
				}
				if len(matches) > 0 && buyP == sellP {
					price = buyP
				}
			default:
				return fail("rule %q", d.Rule)
			}
		}
		if price != w.Price {
			return fail("price %d, the %s rule gives %d", w.Price, d.Rule, price)
		}
		got := map[string]int64{}
		for _, r := range w.Reduced {
			got[r.Order] += r.Wh
		}
		if fmt.Sprint(got) != fmt.Sprint(reduced) {
			return fail("reduced units %v, McAfee's reduction removes %v", got, reduced)
		}
		// The line security check, match by match, on 2 W per Wh of rights.
		watts := func() []int64 {
			if p.Grid == nil {
				return nil
			}
			out := make([]int64, len(p.Grid.Buses))
			for st, r := range rights {
				out[busIdx[busOf[st]]] += 2 * r
			}
			return out
		}
		type verdict struct {
			ok                   bool
			bus                  string
			before, after, limit int64
		}
		check := func(watts []int64, buyer, seller string, q int64) verdict {
			if p.Grid == nil || len(w.Headroom) == 0 || busOf[buyer] == busOf[seller] {
				return verdict{ok: true}
			}
			moved := append([]int64(nil), watts...)
			moved[busIdx[busOf[buyer]]] += 2 * q
			moved[busIdx[busOf[seller]]] -= 2 * q
			db, da := drops(watts), drops(moved)
			for j := 1; j < len(p.Grid.Buses); j++ {
				lim, ok := w.Headroom[p.Grid.Buses[j].Name]
				if ok && da[j] > max(lim, db[j]) {
					return verdict{bus: p.Grid.Buses[j].Name, before: db[j], after: da[j], limit: lim}
				}
			}
			return verdict{ok: true}
		}
		ww := watts()
		var settled []aMatch
		ti, ri := 0, 0
		for _, m := range matches {
			v := check(ww, m.buy.station, m.sell.station, m.qty)
			var rec auditTrade
			if v.ok {
				if ti >= len(w.Auction) {
					return fail("match %s>%s %d Wh passes the security check but is not among the trades", m.buy.id, m.sell.id, m.qty)
				}
				rec, ti = w.Auction[ti], ti+1
				settled = append(settled, m)
				if ww != nil {
					ww[busIdx[busOf[m.buy.station]]] += 2 * m.qty
					ww[busIdx[busOf[m.sell.station]]] -= 2 * m.qty
				}
			} else {
				if ri >= len(w.Refused) {
					return fail("match %s>%s %d Wh fails the security check at bus %s but is not among the refused", m.buy.id, m.sell.id, m.qty, v.bus)
				}
				rec, ri = w.Refused[ri], ri+1
				if rec.Bus != v.bus || rec.Before != v.before || rec.After != v.after || rec.Limit != v.limit || rec.Reason == "" {
					return fail("refusal %+v, the check finds bus %s %d -> %d against %d", rec, v.bus, v.before, v.after, v.limit)
				}
			}
			want := auditTrade{Buy: m.buy.id, Sell: m.sell.id, Buyer: m.buy.station, Seller: m.sell.station, Wh: m.qty, BuyerPrice: m.bp, SellerPrice: m.sp}
			rec.Bus, rec.Before, rec.After, rec.Limit, rec.Reason = "", 0, 0, 0, ""
			if rec != want {
				return fail("match %+v, re-derived %+v", rec, want)
			}
		}
		if ti != len(w.Auction) || ri != len(w.Refused) || w.Trades != ti || w.Failed != ri {
			return fail("%d trades and %d refusals in the file (%d/%d counted), %d and %d re-derived", len(w.Auction), len(w.Refused), w.Trades, w.Failed, ti, ri)
		}
		// Settlement: amounts summed per order, rounded once per order.
		var in auditIncome
		buyMilli, sellMilli, boughtWh := map[*aOrder]int64{}, map[*aOrder]int64{}, map[*aOrder]int64{}
		var vol int64
		for _, m := range settled {
			buyMilli[m.buy] += m.qty * m.bp
			sellMilli[m.sell] += m.qty * m.sp
			boughtWh[m.buy] += m.qty
			rights[m.buy.station] += m.qty
			rights[m.sell.station] -= m.qty
			vol += m.qty
		}
		if vol != w.Volume {
			return fail("volume %d, re-derived %d", w.Volume, vol)
		}
		congestion := func(st string, wh int64) int64 { return ceilDiv(wh*w.Fee[busOf[st]], 1000) }
		for _, o := range bids {
			cost := ceilDiv(buyMilli[o], 1000)
			tf, cf := cost*p.FeePPM/1_000_000, congestion(o.station, boughtWh[o])
			balance[o.station] -= cost + tf + cf
			in.TradeFees += tf
			in.Congestion += cf
			in.Spread += cost
		}
		for _, o := range asks {
			gets := sellMilli[o] / 1000
			balance[o.station] += gets
			in.Spread -= gets
		}
		// P2P on the residuals (less settled fills and reduced units),
		// priced at the midpoint, each contract security-checked in turn.
		for _, o := range append(append([]*aOrder(nil), bids...), asks...) {
			left[o] = o.qty - reduced[o.id]
		}
		for _, m := range settled {
			left[m.buy] -= m.qty
			left[m.sell] -= m.qty
		}
		p2p := greedy(bids, asks, left, -1)
		if len(p2p) != len(w.P2P) {
			return fail("%d P2P contracts in the file, %d re-derived", len(w.P2P), len(p2p))
		}
		ww = watts()
		var contracts int
		var p2pWh int64
		for i, m := range p2p {
			c := w.P2P[i]
			mid := (m.buy.price + m.sell.price) / 2
			if c.Buy != m.buy.id || c.Sell != m.sell.id || c.Buyer != m.buy.station || c.Seller != m.sell.station || c.Wh != m.qty || c.Price != mid {
				return fail("P2P contract %+v, re-derived %s>%s %d Wh at %d", c, m.buy.id, m.sell.id, m.qty, mid)
			}
			v := check(ww, c.Buyer, c.Seller, c.Wh)
			if v.ok = v.ok && rights[c.Seller] >= c.Wh; v.ok != c.Settled || !v.ok && !strings.Contains(c.Refused, "bus "+v.bus) {
				return fail("P2P contract %s>%s settled %v (%q), the check says %v at bus %q", c.Buy, c.Sell, c.Settled, c.Refused, v.ok, v.bus)
			}
			if !v.ok {
				continue
			}
			cost := ceilDiv(c.Wh*c.Price, 1000)
			tf, cf := cost*p.FeePPM/1_000_000, congestion(c.Buyer, c.Wh)
			balance[c.Buyer] -= cost + tf + cf
			balance[c.Seller] += cost
			in.TradeFees += tf
			in.Congestion += cf
			rights[c.Buyer] += c.Wh
			rights[c.Seller] -= c.Wh
			if ww != nil {
				ww[busIdx[busOf[c.Buyer]]] += 2 * c.Wh
				ww[busIdx[busOf[c.Seller]]] -= 2 * c.Wh
			}
			contracts++
			p2pWh += c.Wh
		}
		if contracts != w.Contracts || p2pWh != w.P2PWh {
			return fail("%d P2P contracts for %d Wh settled in the file, %d for %d re-derived", w.Contracts, w.P2PWh, contracts, p2pWh)
		}
		// Delivery: penalty ceil(|delivered - rights| x penalty / 1000),
		// at most the station's own balance (so the order does not matter).
		for _, r := range w.Rights {
			if rights[r.Station] != r.Final {
				return fail("%s ends with %d Wh of rights, re-derived %d", r.Station, r.Final, rights[r.Station])
			}
		}
		pen := map[string]int64{}
		for _, r := range w.Rights {
			dev := r.Delivered - r.Final
			pen[r.Station] = min(balance[r.Station], ceilDiv(max(dev, -dev)*p.Penalty, 1000))
		}
		for _, r := range w.Rights {
			if r.Penalty != pen[r.Station] {
				return fail("%s paid a penalty of %d, re-derived %d", r.Station, r.Penalty, pen[r.Station])
			}
			balance[r.Station] -= pen[r.Station]
			in.Penalties += pen[r.Station]
		}
		if in != w.Income {
			return fail("income %+v, re-derived %+v", w.Income, in)
		}
		total.TradeFees += in.TradeFees
		total.Congestion += in.Congestion
		total.Spread += in.Spread
		total.Penalties += in.Penalties
	}
	if total != d.Income || d.GridFees != total.TradeFees+total.Congestion+total.Spread+total.Penalties {
		return fmt.Errorf("the day's income %+v (grid holds %d), re-derived %+v", d.Income, d.GridFees, total)
	}
	for _, s := range d.Stations {
		if s.Balance != balance[s.Name] || d.Balances[s.Name] != balance[s.Name] {
			return fmt.Errorf("%s ends with %d (balances: %d), re-derived %d", s.Name, s.Balance, d.Balances[s.Name], balance[s.Name])
		}
	}
	return nil
}

// TestMarketAudit: every rule's day, and a day where the line security
// check binds, re-derive exactly from market.json alone; a file with one
// figure changed does not.
func TestMarketAudit(t *testing.T) {
	type run struct {
		scenario string
		rule     string
		headroom float64
	}
	runs := map[string]run{
		"uniform":             {"ieee13-paper", "uniform", 1},
		"pay-as-bid":          {"ieee13-paper", "pay-as-bid", 1},
		"mcafee":              {"ieee13-paper", "mcafee", 1},
		"stressed-uniform":    {"ieee13-stressed", "uniform", 0.8},
		"stressed-mcafee":     {"ieee13-stressed", "mcafee", 0.8},
		"stressed-pay-as-bid": {"ieee13-stressed", "pay-as-bid", 0.8},
	}
	names := make([]string, 0, len(runs))
	for n := range runs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		r := runs[name]
		d := runDay(t, r.scenario, func(c *Config) { c.Market.On, c.Market.Rule, c.Market.Headroom = true, r.rule, r.headroom })
		data := dayFiles(t, d)["market.json"]
		if err := auditMarket(data); err != nil {
			t.Fatalf("%s: market.json does not re-derive: %v", name, err)
		}
		if name != "mcafee" {
			continue
		}
		// One changed figure anywhere is caught.
		for _, edit := range []struct{ from, to string }{
			{`"buyer_price":`, `"buyer_price":1`},
			{`"initial_wh":`, `"initial_wh":1`},
			{`"penalty":`, `"penalty":1`},
			{`"fee_ppm":10000`, `"fee_ppm":20000`},
			{`"side":"buy","wh":1}`, `"side":"buy","wh":2}`}, // a McAfee reduction
			{`"side":"sell","price":`, `"side":"sell","price":1`},
		} {
			bad := strings.Replace(string(data), edit.from, edit.to, 1)
			if bad == string(data) {
				t.Fatalf("edit %q found nothing to change", edit.from)
			}
			if err := auditMarket([]byte(bad)); err == nil {
				t.Errorf("market.json with %q changed to %q passes the audit", edit.from, edit.to)
			}
		}
	}
}

// TestMarketSecurityBinds: on the stressed evening with the grid company
// keeping a fifth of the voltage headroom in reserve, the line security
// check refuses some auction matches; market.json records them with the
// bus and the figures, every accepted trade passes the check as the audit
// recomputes it, and the report lists the refusals. A headroom share
// outside (0, 1] is refused by name.
func TestMarketSecurityBinds(t *testing.T) {
	d := runDay(t, "ieee13-stressed", func(c *Config) { c.Market.On, c.Market.Headroom = true, 0.8 })
	files := dayFiles(t, d)
	data, page := files["market.json"], files["report.html"]
	if err := auditMarket(data); err != nil {
		t.Fatalf("market.json does not re-derive: %v", err)
	}
	var f struct {
		Headroom float64 `json:"headroom_fraction"`
		Day      struct {
			Windows []struct {
				Rejected int          `json:"rejected_transactions"`
				Refused  []auditTrade `json:"refused"`
				P2P      []struct {
					Settled bool   `json:"settled"`
					Refused string `json:"refused"`
				} `json:"p2p"`
			} `json:"windows"`
		} `json:"day"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	refused, settled := 0, 0
	for _, w := range f.Day.Windows {
		p2pRefused := 0
		for _, c := range w.P2P {
			if c.Settled {
				settled++
			} else if p2pRefused++; !strings.Contains(c.Refused, "line security check") {
				t.Fatalf("P2P contract refused for %q, not the security check", c.Refused)
			}
		}
		if w.Rejected != p2pRefused {
			t.Fatalf("%d transactions rejected, %d of them refused P2P contracts: the day sent a malformed one", w.Rejected, p2pRefused)
		}
		for _, r := range w.Refused {
			refused++
			if r.Bus == "" || !(r.After > r.Limit && r.After > r.Before) || !strings.Contains(string(page), r.Reason) {
				t.Fatalf("refusal %+v: no bus, figures that do not breach the headroom, or missing from the report", r)
			}
		}
	}
	if refused == 0 || settled == 0 || f.Headroom != 0.8 {
		t.Fatalf("%d auction matches refused, %d P2P contracts settled at headroom share %v: want the check to bind and P2P to trade some of what it left", refused, settled, f.Headroom)
	}
	if !strings.Contains(string(page), "Trades refused by the line security check") {
		t.Fatal("the report has no table of refused trades")
	}
	p, m := load(t, "ieee13-paper")
	for _, bad := range []float64{0, 1.5, math.NaN()} {
		c := Defaults()
		c.Market.On, c.Market.Headroom = true, bad
		if _, err := RunDay(p, m, c); err == nil || !strings.Contains(err.Error(), "--market-headroom") {
			t.Fatalf("headroom %v: %v, want a refusal naming --market-headroom", bad, err)
		}
	}
}
