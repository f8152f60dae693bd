package runfile

import (
	"fmt"
	"math"

	"github.com/gridveil/gridveil/ledger"
	"github.com/gridveil/gridveil/report"
	"github.com/gridveil/gridveil/scenario"
)

// Market is market.json.
type Market struct {
	Schema   string            `json:"schema"`
	Scenario string            `json:"scenario"`
	Seed     uint64            `json:"seed"`
	Feeder   string            `json:"feeder"`
	Margin   float64           `json:"margin_fraction"`
	Headroom float64           `json:"headroom_fraction"` // share of the baseline's voltage headroom posted for the security check
	Stations []string          `json:"stations"`
	Day      *ledger.DayResult `json:"day"`
	Rolling  *Rolling          `json:"rolling"`
	// V2V is the day's V2V trading (v2v.go), present with bidirectional
	// vehicles that agreed to discharge.
	V2V *V2V `json:"v2v,omitempty"`
}

// Rolling is seed 003's rolling price formation run on the same day,
// as the alternative to the auction: the platform posts one price per
// window and moves it until the stations' price-responsive demand meets
// the grid's margin.
type Rolling struct {
	Choke      map[string]float64 `json:"choke_price"` // station -> price at which it takes nothing, milli-currency per kWh
	Price      []float64          `json:"price"`       // per window, milli-currency per kWh
	Demand     []float64          `json:"demand_wh"`   // per window at that price
	Iterations int                `json:"iterations"`
	Converged  bool               `json:"converged"`
}

// marketTable is the market's per-window table.
func marketTable(mf *Market, m *scenario.Meta, dt float64) report.Table {
	t := report.Table{
		Title: fmt.Sprintf("Charging-rights market: %s clearing, %d stations", mf.Day.Rule, len(mf.Stations)),
		Header: []string{"window", "demand kWh", "margin kWh", "rho", "bids / asks", "bid / ask kWh", "trades", "refused (security)",
			"auction kWh", "price /kWh", "P2P kWh", "unmet kWh", "fees", "congestion fees", "penalties"},
	}
	spw := max(1, int(math.Round(0.5/dt)))
	kwh := func(wh int64) string { return fmt.Sprintf("%.1f", float64(wh)/1000) }
	money := func(v int64) string { return fmt.Sprintf("%.3f", float64(v)/1000) }
	for _, w := range mf.Day.Windows {
		if w.Demand == 0 && w.Orders == 0 {
			continue
		}
		price := "-"
		if w.Price > 0 {
			price = fmt.Sprintf("%.3f", float64(w.Price)/1000)
		}
		t.Rows = append(t.Rows, []string{scenario.SlotClock(m.Start, dt, w.Index*spw), kwh(w.Demand), kwh(w.Margin),
			fmt.Sprintf("%.3f", w.Rho), fmt.Sprintf("%d / %d", w.Bids, w.Asks), kwh(w.BidWh) + " / " + kwh(w.AskWh), fmt.Sprint(w.Trades), fmt.Sprint(w.Failed),
			kwh(w.Volume), price, kwh(w.P2PVolume), kwh(w.Unmet), money(w.Income.TradeFees + w.Income.Spread), money(w.Income.Congestion), money(w.Income.Penalties)})
	}
	in := mf.Day.Income
	t.Caption = fmt.Sprintf("Windows with demand, each traded through the ledger application (the CometBFT ABCI app, driven block by block on a simulated clock): demand from the coordinated schedules, the grid company's margin (%.0f%% of demand), rights rho x demand, a double auction, the line security check against each bus's voltage headroom, atomic settlement, P2P contracts for unfilled orders, and metered delivery (each station's demand) with penalties for deviating from rights. The grid company received %s: %s in trade fees and spread, %s in congestion fees, %s in penalties; money is conserved (%d blocks, final app hash %s...).",
		100*mf.Margin, money(in.Total()), money(in.TradeFees+in.Spread), money(in.Congestion), money(in.Penalties), mf.Day.Blocks, mf.Day.AppHash[:16])
	return t
}

// MarketTables are the market's report tables: windows, stations, and the
// matches the line security check refused, when it refused any.
func MarketTables(mf *Market, m *scenario.Meta, dt float64) []report.Table {
	ts := []report.Table{marketTable(mf, m, dt), marketStationTable(mf)}
	if t, ok := marketRefusedTable(mf, m, dt); ok {
		ts = append(ts, t)
	}
	return ts
}

// marketRefusedTable lists every auction match and P2P contract the line
// security check refused, with the bus that would have gone beyond its
// headroom; ok is false when nothing was refused.
func marketRefusedTable(mf *Market, m *scenario.Meta, dt float64) (report.Table, bool) {
	t := report.Table{
		Title:  "Trades refused by the line security check",
		Header: []string{"window", "phase", "buyer", "seller", "kWh", "bus", "V^2 drop before / after / headroom [1e-3 pu^2]", "ledger's reason"},
	}
	spw := max(1, int(math.Round(0.5/dt)))
	milli := func(n int64) string { return fmt.Sprintf("%.3f", float64(n)/1e6) }
	p2pRefused := 0
	for _, w := range mf.Day.Windows {
		clock := scenario.SlotClock(m.Start, dt, w.Index*spw)
		for _, r := range w.Refused {
			t.Rows = append(t.Rows, []string{clock, "auction", r.Buyer, r.Seller, fmt.Sprintf("%.1f", float64(r.Wh)/1000), r.Bus,
				milli(r.Before) + " / " + milli(r.After) + " / " + milli(r.Limit), r.Reason})
		}
		for _, c := range w.P2P {
			if !c.Settled {
				p2pRefused++
				t.Rows = append(t.Rows, []string{clock, "P2P", c.Buyer, c.Seller, fmt.Sprintf("%.1f", float64(c.Wh)/1000), "", "", c.Refused})
			}
		}
	}
	if len(t.Rows) == 0 {
		return t, false
	}
	t.Caption = fmt.Sprintf("Each auction match, in matching order, and each P2P contract moves rights from seller to buyer only if no bus then ends beyond both the V^2 headroom the grid company posted for the window (%.0f%% of what the baseline leaves above vmin, --market-headroom) and where it already was (LinDistFlow in integers on the ledger, 2 W per Wh of rights). A refused match leaves its orders' units for the P2P phase, whose contracts face the same check. %d P2P contracts were refused as well; their reasons are the ledger's.",
		100*mf.Headroom, p2pRefused)
	return t, true
}

// marketStationTable shows each station's rights before and after trading
// over the day.
func marketStationTable(mf *Market) report.Table {
	t := report.Table{
		Title:  "Rights before and after trading, per station (whole day)",
		Header: []string{"station", "bus", "demand kWh", "rights before kWh", "auction +/- kWh", "P2P +/- kWh", "rights after kWh", "deviation kWh", "money change", "reputation"},
	}
	kwh := func(wh int64) string { return fmt.Sprintf("%.1f", float64(wh)/1000) }
	for _, st := range mf.Day.Stations {
		t.Rows = append(t.Rows, []string{st.Name, st.Bus, kwh(st.Demand), kwh(st.RightsBefore),
			"+" + kwh(st.Bought) + " / -" + kwh(st.Sold), "+" + kwh(st.P2PBought) + " / -" + kwh(st.P2PSold), kwh(st.RightsAfter), kwh(st.Deviation),
			fmt.Sprintf("%+.3f", float64(st.Balance-1_000_000_000)/1000), fmt.Sprintf("%.3f", float64(st.Reputation)/1e6)})
	}
	t.Caption = "Rights before are the initial rights rho x demand; rights after add what a station bought and subtract what it sold in the auction and P2P. Deviation is |metered delivery - rights| summed over windows, which the penalties and the reputation update (from 0.5) follow. Money change includes trades, fees and penalties."
	return t
}

// MarketDepth is the order book of the window with the most energy bid
// and offered (the earliest of equals): bids by falling price and asks by
// rising price against cumulative energy.
func MarketDepth(mf *Market, m *scenario.Meta, dt float64) *report.XYFigure {
	best := -1
	for i, w := range mf.Day.Windows {
		if len(w.Book) > 0 && (best < 0 || w.BidWh+w.AskWh > mf.Day.Windows[best].BidWh+mf.Day.Windows[best].AskWh) {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	w := mf.Day.Windows[best]
	var bids, asks report.XYSeries
	bids.Name, asks.Name = "bids (demand)", "asks (supply)"
	for _, side := range []*report.XYSeries{&bids, &asks} {
		want := "buy"
		if side == &asks {
			want = "sell"
		}
		cum := 0.0
		for _, l := range w.Book {
			if l.Side != want {
				continue
			}
			p := float64(l.Price) / 1000
			side.X = append(side.X, cum)
			side.Y = append(side.Y, p)
			cum += float64(l.Wh) / 1000
		}
		if len(side.X) > 0 {
			side.X = append(side.X, cum)
			side.Y = append(side.Y, side.Y[len(side.Y)-1])
		}
	}
	spw := max(1, int(math.Round(0.5/dt)))
	price := "no single clearing price"
	switch {
	case w.Price > 0:
		price = fmt.Sprintf("cleared at %.3f /kWh", float64(w.Price)/1000)
	case len(w.Reduced) > 0 && len(w.AuctionTrades) > 0:
		price = fmt.Sprintf("trade reduction: buyers paid %.3f and sellers received %.3f /kWh", float64(w.AuctionTrades[0].BuyerPrice)/1000, float64(w.AuctionTrades[0].SellerPrice)/1000)
	}
	return &report.XYFigure{
		Title: "Order book, window " + scenario.SlotClock(m.Start, dt, w.Index*spw), XLabel: "cumulative energy [kWh]", YLabel: "price [currency/kWh]", Step: true,
		Curves: []report.XYSeries{bids, asks},
		Caption: fmt.Sprintf("The book of the window with the most energy bid and offered (%d bids for %.1f kWh, %d asks for %.1f kWh; %s rule, %s, %.1f kWh traded): demand and supply curves as the auction sees them, orders in price-time priority. Where the bid staircase lies above the ask staircase, rights trade.",
			w.Bids, float64(w.BidWh)/1000, w.Asks, float64(w.AskWh)/1000, mf.Day.Rule, price, float64(w.Volume)/1000),
	}
}

// MarketFigures plots the day: energy per window, and the clearing price
// when the rule has one.
func MarketFigures(mf *Market, m *scenario.Meta, dt float64) []report.LineFigure {
	spw := max(1, int(math.Round(0.5/dt)))
	var labels []string
	demand, margin, volume, p2p, unmet, price := []float64{}, []float64{}, []float64{}, []float64{}, []float64{}, []float64{}
	for _, w := range mf.Day.Windows {
		labels = append(labels, scenario.SlotClock(m.Start, dt, w.Index*spw))
		demand = append(demand, float64(w.Demand)/1000)
		margin = append(margin, float64(w.Margin)/1000)
		volume = append(volume, float64(w.Volume)/1000)
		p2p = append(p2p, float64(w.P2PVolume)/1000)
		unmet = append(unmet, float64(w.Unmet)/1000)
		price = append(price, float64(w.Price)/1000)
	}
	figs := []report.LineFigure{{
		Title: "Charging rights per window", YLabel: "energy [kWh]", Labels: labels,
		Series: []report.Series{{Name: "stations' demand", Y: demand}, {Name: "grid margin", Y: margin}, {Name: "traded in the auction", Y: volume},
			{Name: "traded P2P", Y: p2p}, {Name: "demand without rights", Y: unmet}},
		Caption: "Per 30-minute delivery window: the stations' demand (what their EVs draw under the coordinated schedules), the grid company's load margin, the charging rights that changed hands in the double auction and in P2P contracts, and the demand left without rights after trading (charged penalties at delivery).",
	}}
	// What the auction's trades were priced at, per window: volume-weighted
	// means of what buyers paid and sellers received (equal under the
	// uniform rule and under McAfee without a trade reduction).
	buyP, sellP := make([]float64, len(labels)), make([]float64, len(labels))
	traded, reductions, apart := 0, 0, false
	for i, w := range mf.Day.Windows {
		var wh, bm, sm int64
		for _, t := range w.AuctionTrades {
			wh += t.Wh
			bm += t.Wh * t.BuyerPrice
			sm += t.Wh * t.SellerPrice
		}
		if wh > 0 {
			traded++
			buyP[i], sellP[i] = float64(bm)/float64(wh)/1000, float64(sm)/float64(wh)/1000
			apart = apart || bm != sm
			if len(w.Reduced) > 0 {
				reductions++
			}
		}
	}
	series := []report.Series{}
	var caption string
	switch {
	case traded == 0:
		caption = "No auction trade took place. "
	case mf.Day.Rule == "uniform":
		series = append(series, report.Series{Name: "uniform clearing price", Y: price})
		caption = "The auction's uniform clearing price per window (the midpoint of the bid and ask of the last unit where demand meets supply; 0 where nothing traded). "
	case mf.Day.Rule == "mcafee" && apart:
		series = append(series, report.Series{Name: "McAfee: buyers pay", Y: buyP}, report.Series{Name: "McAfee: sellers receive", Y: sellP})
		caption = fmt.Sprintf("What McAfee's rule charged buyers and paid sellers per window (0 where nothing traded). In %d of the %d windows with trades the midpoint of the first excluded bid and ask fell outside the last included ones, so the rule dropped one unit (1 Wh) and priced the two sides apart: buyers pay the last included bid, sellers receive the last included ask, and the grid company keeps the difference; there is no single auction price. The dropped unit is kept out of the P2P phase. ", reductions, traded)
	case mf.Day.Rule == "mcafee":
		series = append(series, report.Series{Name: "McAfee price", Y: price})
		caption = "McAfee's single price per window (the midpoint of the first excluded bid and ask, which lay between the last included ones in every window with trades; 0 where nothing traded). "
	default:
		series = append(series, report.Series{Name: "pay-as-bid: buyers pay (mean)", Y: buyP}, report.Series{Name: "pay-as-bid: sellers receive (mean)", Y: sellP})
		caption = "Under pay-as-bid each buyer pays its own bid and each seller receives its own ask: the volume-weighted means per window (0 where nothing traded); the grid company keeps the spread. "
	}
	if r := mf.Rolling; r != nil && len(r.Price) == len(labels) {
		rp := make([]float64, len(r.Price))
		for i, v := range r.Price {
			rp[i] = v / 1000
		}
		series = append(series, report.Series{Name: "rolling price", Y: rp})
		caption += "The rolling price is seed 003's rolling price formation on the same day: the platform moves one price per window until the stations' price-responsive demand (falling linearly to zero at each station's choke price) meets the grid's margin. The two answer different questions: the auction reallocates rights rho x demand among stations; the rolling price curtails demand to the margin."
	}
	if len(series) > 0 {
		figs = append(figs, report.LineFigure{
			Title: "Prices of charging rights", YLabel: "price [currency/kWh]", Labels: labels,
			Series: series, Caption: caption,
		})
	}
	return figs
}
