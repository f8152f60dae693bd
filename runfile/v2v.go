package runfile

import (
	"fmt"
	"io"
	"math"

	"github.com/gridveil/gridveil/report"
	"github.com/gridveil/gridveil/scenario"
)

// V2V is market.json's v2v section: seed 004's V2V trading in every
// market window at every LAG of the first feeder (docs/FORMATS.md). The
// aggregator buys, for each charging vehicle in turn, what it needs from
// the vehicles that agreed to discharge there, by market.ReverseAuction
// over their anonymous offers; awards are paid by signed transfers on a
// ledger chain of their own; meters read each seller's delivery and a
// seller that delivers short of its award pays the penalty per kWh.
type V2V struct {
	Chain   string `json:"chain"`
	Limit   int64  `json:"limit"`   // a buyer's limit, milli-currency per kWh (what the grid would charge it)
	Penalty int64  `json:"penalty"` // per kWh a seller delivers short of its awards, milli-currency, to the grid company
	// Shortfall is the meters' model: in each window a seller delivers its
	// scheduled export, except that with this probability (drawn from the
	// seed) it delivers a uniform 50-100% of it.
	Shortfall float64        `json:"shortfall_probability"`
	Grid      string         `json:"grid_account"` // the grid company's account (hex public key)
	Windows   []V2VWindow    `json:"windows"`      // every window and LAG with offers and a need
	Accounts  []V2VAccount   `json:"accounts"`     // every trader's account, by anonymous id
	Blocks    int64          `json:"blocks"`
	AppHash   string         `json:"app_hash"`
	Totals    V2VWindowTotal `json:"totals"`
}

// V2VWindow is one window's V2V trading at one LAG.
type V2VWindow struct {
	Window int        `json:"window"` // market window index (30 minutes)
	LAG    string     `json:"lag"`
	Offers []V2VOffer `json:"offers"`
	// Buyers are the charging vehicles in the order the aggregator served
	// them, each with the awards of its own reverse auction over the
	// offers' remaining energy.
	Buyers   []V2VBuyer    `json:"buyers"`
	Delivery []V2VDelivery `json:"delivery"` // per seller with an award
	Txs      []V2VTx       `json:"transactions"`
	V2VWindowTotal
}

// V2VWindowTotal sums a window (or the day).
type V2VWindowTotal struct {
	OfferedWh   int64 `json:"offered_wh"`
	NeedWh      int64 `json:"need_wh"`
	AwardedWh   int64 `json:"awarded_wh"`
	DeliveredWh int64 `json:"delivered_wh"`
	ShortWh     int64 `json:"short_wh"`
	Paid        int64 `json:"paid"`      // buyers to sellers, milli-currency
	Penalties   int64 `json:"penalties"` // sellers to the grid company
}

// V2VOffer is an anonymous ask: a seller's id at its LAG (the session,
// never the vehicle), its price per kWh, the Wh it offers (its scheduled
// export in the window) and its submission sequence.
type V2VOffer struct {
	ID    string `json:"id"`
	Price int64  `json:"price"`
	Qty   int64  `json:"wh"`
	Seq   uint64 `json:"seq"`
}

// V2VBuyer is one charging vehicle's auction: its need (its scheduled
// charge in the window, Wh) and what it was awarded.
type V2VBuyer struct {
	ID     string     `json:"id"`
	NeedWh int64      `json:"need_wh"`
	Awards []V2VAward `json:"awards"`
}

// V2VAward is one seller's part of a buyer's auction: Wh at the
// auction's uniform price (milli-currency per kWh).
type V2VAward struct {
	Seller string `json:"seller"`
	Wh     int64  `json:"wh"`
	Price  int64  `json:"price"`
}

// V2VDelivery is a seller's metered delivery against its awards.
type V2VDelivery struct {
	Seller      string `json:"seller"`
	AwardedWh   int64  `json:"awarded_wh"`
	MeteredWh   int64  `json:"metered_wh"`   // its meter's export in the window
	DeliveredWh int64  `json:"delivered_wh"` // min(awarded, metered)
	ShortWh     int64  `json:"short_wh"`     // awarded - delivered
	Penalty     int64  `json:"penalty"`      // ceil(short_wh x penalty / 1000)
}

// V2VTx is a signed transfer on the V2V chain: an award's payment (buyer
// to seller, ceil(wh x price / 1000)) or a penalty (seller to the grid
// company). Code is the ledger's result (0: applied).
type V2VTx struct {
	Kind   string `json:"kind"` // award or penalty
	From   string `json:"from"`
	To     string `json:"to"`
	Wh     int64  `json:"wh"`
	Amount int64  `json:"amount"`
	Code   uint32 `json:"code"`
}

// V2VAccount is a trader's ledger account: its anonymous id, public key,
// and balance at genesis and after the day, as the ledger's state holds
// it.
type V2VAccount struct {
	ID      string `json:"id"`
	Key     string `json:"key"`
	Opening int64  `json:"opening"`
	Final   int64  `json:"final"`
}

// V2VTable is the report's table of V2V trading per window.
func V2VTable(v *V2V, m *scenario.Meta, dt float64) report.Table {
	t := report.Table{
		Title:  "V2V trading: reverse auctions at each LAG, settled on the ledger",
		Header: []string{"window", "LAG", "offers", "offered kWh", "buyers", "need kWh", "awarded kWh", "prices /kWh", "delivered kWh", "short kWh", "paid", "penalties"},
	}
	spw := max(1, int(math.Round(0.5/dt)))
	kwh := func(wh int64) string { return fmt.Sprintf("%.2f", float64(wh)/1000) }
	money := func(v int64) string { return fmt.Sprintf("%.3f", float64(v)/1000) }
	for _, w := range v.Windows {
		lo, hi := int64(math.MaxInt64), int64(-1)
		for _, b := range w.Buyers {
			for _, a := range b.Awards {
				lo, hi = min(lo, a.Price), max(hi, a.Price)
			}
		}
		prices := "-"
		if hi >= 0 {
			prices = money(lo)
			if hi != lo {
				prices += " - " + money(hi)
			}
		}
		t.Rows = append(t.Rows, []string{scenario.SlotClock(m.Start, dt, w.Window*spw), w.LAG, fmt.Sprint(len(w.Offers)), kwh(w.OfferedWh), fmt.Sprint(len(w.Buyers)), kwh(w.NeedWh),
			kwh(w.AwardedWh), prices, kwh(w.DeliveredWh), kwh(w.ShortWh), money(w.Paid), money(w.Penalties)})
	}
	to := v.Totals
	t.Caption = fmt.Sprintf("Distributed discharging, beside the rights auction: in each window the vehicles that agreed to the CA's request offer their scheduled export at their own price under anonymous ids, and the aggregator buys each charging vehicle's need by reverse auction (cheapest first, every winner paid the first rejected price, at most %s /kWh). Awards are signed transfers on the V2V chain (%d blocks, app hash %.16s...). Meters read each seller's delivery; %s kWh were delivered short of awards and paid %s in penalties (%s /kWh) to the grid company. Over the day %s kWh were offered, %s kWh needed, %s kWh awarded for %s.",
		money(v.Limit), v.Blocks, v.AppHash, kwh(to.ShortWh), money(to.Penalties), money(v.Penalty), kwh(to.OfferedWh), kwh(to.NeedWh), kwh(to.AwardedWh), money(to.Paid))
	return t
}

// PrintV2V prints the V2V summary line, when V2V trading ran.
func PrintV2V(w io.Writer, mo *Market) {
	if mo == nil || mo.V2V == nil {
		return
	}
	to := mo.V2V.Totals
	fmt.Fprintf(w, "  v2v          %d auctions in %d window-LAGs: %.1f kWh offered, %.1f kWh needed, %.1f kWh awarded for %.3f; %.1f kWh short, %.3f in penalties\n",
		countBuyers(mo.V2V), len(mo.V2V.Windows), float64(to.OfferedWh)/1000, float64(to.NeedWh)/1000, float64(to.AwardedWh)/1000, float64(to.Paid)/1000, float64(to.ShortWh)/1000, float64(to.Penalties)/1000)
}

func countBuyers(v *V2V) int {
	n := 0
	for _, w := range v.Windows {
		n += len(w.Buyers)
	}
	return n
}
