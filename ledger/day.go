package ledger

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/gridveil/gridveil/market"
)

// Driver runs the ledger application the way CometBFT does, block by
// block, on a simulated clock: what the simulator uses to run a market day
// deterministically in one process. The node shell (StartNode) runs the
// same App under real consensus.
type Driver struct {
	App    *App
	Height int64
}

// NewDriver starts an in-memory application from genesis.
func NewDriver(g *Genesis) (*Driver, error) {
	app, err := NewApp("")
	if err != nil {
		return nil, err
	}
	gen, err := jsonMarshal(g)
	if err != nil {
		return nil, err
	}
	if _, err := app.InitChain(context.Background(), &abci.RequestInitChain{ChainId: g.Params.Chain, AppStateBytes: gen}); err != nil {
		return nil, err
	}
	return &Driver{App: app}, nil
}

// Block finalizes and commits one block with txs at time nowMs and returns
// each transaction's result.
func (d *Driver) Block(nowMs int64, txs [][]byte) ([]*abci.ExecTxResult, error) {
	d.Height++
	res, err := d.App.FinalizeBlock(context.Background(), &abci.RequestFinalizeBlock{Height: d.Height, Time: time.UnixMilli(nowMs), Txs: txs})
	if err != nil {
		return nil, err
	}
	if _, err := d.App.Commit(context.Background(), &abci.RequestCommit{}); err != nil {
		return nil, err
	}
	return res.TxResults, nil
}

// DayStation is one charging station of a market day.
type DayStation struct {
	Name   string
	Bus    string  // bus in the grid model
	Demand []int64 // Wh per delivery window
	// Delivered is the metered Wh per window, for example what the
	// station's OCPP meter values reported (ocpp.Delivery.WindowWh); nil:
	// the station drew its demand.
	Delivered []int64
}

// metered is the station's metered delivery in window w.
func (st *DayStation) metered(w int) int64 {
	if st.Delivered != nil {
		return st.Delivered[w]
	}
	return st.Demand[w]
}

// DayConfig describes a trading day: the windows, the stations, and what
// the grid company posts for each window.
type DayConfig struct {
	Chain    string
	Rule     string
	FeePPM   int64
	Penalty  int64
	Grid     *GridModel
	Stations []DayStation
	Margin   []int64            // Wh per window
	Slack    []map[string]int64 // per window: bus headroom, nano-pu^2
	Fee      []map[string]int64 // per window: bus congestion fee per kWh
	Seed     uint64
}

// DayWindow is one window's outcome, with everything a third party needs
// to re-derive it from the file alone: the posted headroom and fees, each
// station's demand and rights, every order with its owner and sequence,
// every auction match (settled or refused by the security check, and
// why), McAfee's reduced units, and every P2P contract.
type DayWindow struct {
	Index        int     `json:"index"`
	Demand       int64   `json:"demand_wh"`
	Margin       int64   `json:"margin_wh"`
	Rho          float64 `json:"satisfaction_rate"`
	RhoPPM       int64   `json:"rho_ppm"`          // the rate as the ledger computes it: min(10^6, floor(10^6 margin / demand))
	RightsBefore int64   `json:"rights_before_wh"` // initial rights, floor(rho_ppm x demand / 10^6) per station
	// Posted by the grid company with the margin: each bus's V^2 headroom
	// (nano-pu^2) that the line security check holds matches to, and its
	// congestion fee (milli-currency per kWh bought at the bus).
	Headroom      map[string]int64 `json:"headroom_npu2,omitempty"`
	CongestionFee map[string]int64 `json:"congestion_fee,omitempty"`
	Rights        []WindowRights   `json:"rights"` // per station with demand or rights
	Orders        int              `json:"orders"`
	Bids          int              `json:"bids"`
	Asks          int              `json:"asks"`
	BidWh         int64            `json:"bid_wh"` // depth: Wh asked for by buy orders
	AskWh         int64            `json:"ask_wh"` // and offered by sell orders
	Book          []BookOrder      `json:"book"`   // every order: bids by falling price, then asks by rising price, ties by seq
	Trades        int              `json:"trades"`
	Failed        int              `json:"failed_security_checks"`
	AuctionTrades []DayTrade       `json:"auction_trades"`    // settled matches, in matching order
	Refused       []DayRefusal     `json:"refused,omitempty"` // matches the security check refused, in matching order
	Reduced       []DayReduction   `json:"reduced,omitempty"` // McAfee's trade reduction: kept out of P2P
	Volume        int64            `json:"volume_wh"`
	Price         int64            `json:"price"`         // uniform or McAfee price, milli-currency per kWh; 0 if none
	P2P           []DayContract    `json:"p2p,omitempty"` // contracts in submission order, settled or refused
	Contracts     int              `json:"p2p_contracts"` // settled
	P2PVolume     int64            `json:"p2p_wh"`        // settled
	Unmet         int64            `json:"unmet_wh"`      // demand not covered by rights after trading
	Excess        int64            `json:"excess_wh"`     // rights held beyond demand after trading
	Income        Income           `json:"income"`        // what the grid company received
	Rejected      int              `json:"rejected_transactions"`
	Congested     []string         `json:"congested_buses,omitempty"` // buses with a congestion fee posted
}

// WindowRights is one station's rights in one window.
type WindowRights struct {
	Station   string `json:"station"`
	Demand    int64  `json:"demand_wh"`
	Initial   int64  `json:"initial_wh"`   // assigned at the satisfaction phase
	Final     int64  `json:"final_wh"`     // after the auction and P2P
	Delivered int64  `json:"delivered_wh"` // metered
	Penalty   int64  `json:"penalty"`      // charged for |delivered - final|, milli-currency
}

// BookOrder is one order of a window's book.
type BookOrder struct {
	ID      string `json:"id"`      // the ledger's order ID
	Station string `json:"station"` // its owner
	Seq     uint64 `json:"seq"`     // submission sequence: time priority
	Side    string `json:"side"`
	Price   int64  `json:"price"` // milli-currency per kWh
	Wh      int64  `json:"wh"`
}

// DayTrade is one match: the two orders, their owners, the energy and
// what the buyer pays and the seller receives per kWh.
type DayTrade struct {
	Buy         string `json:"buy_order"`
	Sell        string `json:"sell_order"`
	Buyer       string `json:"buyer"`
	Seller      string `json:"seller"`
	Wh          int64  `json:"wh"`
	BuyerPrice  int64  `json:"buyer_price"`
	SellerPrice int64  `json:"seller_price"`
}

// DayRefusal is a match the line security check refused.
type DayRefusal struct {
	DayTrade
	Bus    string `json:"bus"`              // first bus that would end beyond its headroom
	Before int64  `json:"drop_before_npu2"` // its V^2 drop before the move
	After  int64  `json:"drop_after_npu2"`  // and after
	Limit  int64  `json:"headroom_npu2"`
	Reason string `json:"reason"`
}

// DayReduction is a unit McAfee's trade reduction removed from an order.
type DayReduction struct {
	Order   string `json:"order"`
	Station string `json:"station"`
	Side    string `json:"side"`
	Wh      int64  `json:"wh"`
}

// DayContract is a P2P contract: the residual orders it matched and
// whether the ledger settled it (if not, the ledger's reason).
type DayContract struct {
	ID      string `json:"id"`
	Buy     string `json:"buy_order"`
	Sell    string `json:"sell_order"`
	Buyer   string `json:"buyer"`
	Seller  string `json:"seller"`
	Wh      int64  `json:"wh"`
	Price   int64  `json:"price"` // milli-currency per kWh, paid by the buyer to the seller
	Settled bool   `json:"settled"`
	Refused string `json:"refused,omitempty"`
}

// DayParams are the ledger's parameters for the day, recorded so that the
// day can be audited from the file: fees, penalty, the matching
// restriction, what each station starts with, and the feeder model the
// security check runs on.
type DayParams struct {
	Chain          string     `json:"chain"`
	FeePPM         int64      `json:"fee_ppm"`         // fee on each trade's value, paid by the buyer
	Penalty        int64      `json:"penalty_per_kwh"` // milli-currency per kWh of deviation
	Levels         int        `json:"reputation_levels"`
	OpeningBalance int64      `json:"opening_balance"` // every station's, milli-currency
	Grid           *GridModel `json:"grid,omitempty"`
}

// DayStationResult is one station's day: rights before and after trading,
// summed over the windows.
type DayStationResult struct {
	Name         string `json:"name"`
	Bus          string `json:"bus"`
	Demand       int64  `json:"demand_wh"`
	RightsBefore int64  `json:"rights_before_wh"`
	Bought       int64  `json:"auction_bought_wh"`
	Sold         int64  `json:"auction_sold_wh"`
	P2PBought    int64  `json:"p2p_bought_wh"`
	P2PSold      int64  `json:"p2p_sold_wh"`
	RightsAfter  int64  `json:"rights_after_wh"`
	Deviation    int64  `json:"deviation_wh"` // |metered delivery - rights|, summed over windows
	Balance      int64  `json:"balance"`      // milli-currency at the end of the day
	Reputation   int64  `json:"reputation_ppm"`
}

// DayResult is a market day.
type DayResult struct {
	Rule     string             `json:"rule"`
	Params   DayParams          `json:"params"`
	Windows  []DayWindow        `json:"windows"`
	Stations []DayStationResult `json:"stations"`
	Balances map[string]int64   `json:"balances"`  // station name -> milli-currency at the end
	GridFees int64              `json:"grid_fees"` // what the grid company collected
	Income   Income             `json:"income"`    // the same, by source
	Money    int64              `json:"money"`     // total money, unchanged from genesis
	AppHash  string             `json:"app_hash"`  // of the final state
	Blocks   int64              `json:"blocks"`
}

// OpeningBalance is what every station holds at the start of a RunDay,
// milli-currency.
const OpeningBalance = 1_000_000_000

// RunDay trades every window of cfg through the ledger application on a
// simulated clock and returns the outcome. Each window goes through seed
// 003's cycle, one block per step: demand and margin, initial rights,
// auction orders, clearing with the line security check, P2P contracts for
// what the auction left unfilled, and metered delivery with penalties.
//
// Each station has a private value per window drawn from the seed: above
// the median it bids for what its rights lack, below it offers half its
// rights. In the P2P phase the orders' residuals (market.Residual: less
// their settled fills and McAfee's reduced units) are matched by
// market.MatchP2P, price-time priority at the midpoint of the two limits;
// the seller signs each contract and the buyer submits it, and the ledger
// settles it or refuses it (the line security check). The metered
// delivery is each station's Delivered, or its demand (what its EVs draw
// under the coordinated schedules) when it has none, so rights short of
// delivery cost penalties. Keys
// derive from the seed too, so the day reproduces exactly.
func RunDay(cfg DayConfig) (*DayResult, error) {
	W := len(cfg.Margin)
	for _, st := range cfg.Stations {
		if st.Delivered != nil && len(st.Delivered) != W {
			return nil, fmt.Errorf("ledger: station %q: metered delivery for %d windows, the day has %d; give one value per window", st.Name, len(st.Delivered), W)
		}
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6d6b74)) // "mkt"
	key := func(label string) ed25519.PrivateKey {
		var s [32]byte
		binary.LittleEndian.PutUint64(s[:], cfg.Seed)
		copy(s[8:], label)
		return ed25519.NewKeyFromSeed(s[:])
	}
	gridKey := key("grid company")
	hexOf := func(k ed25519.PrivateKey) string { return fmt.Sprintf("%x", k.Public()) }
	g := &Genesis{Params: Params{Chain: cfg.Chain, MinuteMillis: 60_000, Rule: cfg.Rule, FeePPM: cfg.FeePPM, Penalty: cfg.Penalty}, Grid: cfg.Grid,
		Accounts: map[string]Account{hexOf(gridKey): {Role: RoleGrid}}}
	keys := make([]ed25519.PrivateKey, len(cfg.Stations))
	hexKeys := make([]string, len(cfg.Stations))
	idx := map[string]int{} // hex key -> station
	for i, st := range cfg.Stations {
		keys[i] = key("station " + st.Name)
		hexKeys[i] = hexOf(keys[i])
		idx[hexKeys[i]] = i
		g.Accounts[hexKeys[i]] = Account{Role: RoleStation, Balance: OpeningBalance, Bus: st.Bus}
	}
	name := func(k string) string { return cfg.Stations[idx[k]].Name }
	d, err := NewDriver(g)
	if err != nil {
		return nil, err
	}
	nonces := map[string]uint64{}
	sign := func(k ed25519.PrivateKey, b Body) []byte {
		b.Chain, b.Nonce = cfg.Chain, nonces[hexOf(k)]
		nonces[hexOf(k)]++
		tx, _ := Sign(b, k)
		return tx
	}
	const min = 60_000
	res := &DayResult{Rule: cfg.Rule, Balances: map[string]int64{},
		Params: DayParams{Chain: cfg.Chain, FeePPM: cfg.FeePPM, Penalty: cfg.Penalty, OpeningBalance: OpeningBalance, Grid: cfg.Grid}}
	stRes := make([]DayStationResult, len(cfg.Stations))
	for i, st := range cfg.Stations {
		stRes[i].Name, stRes[i].Bus = st.Name, st.Bus
	}
	money := d.App.State().Money()
	// Window w delivers from (w+1) cycles after the epoch; its trading
	// happens in the cycle before.
	base := int64(1_000_000) // cycles after the Unix epoch, so times are positive
	for w := 0; w < W; w++ {
		win := base + int64(w)
		start := win * 30 * min
		rejected := 0
		var s *State
		var results []*abci.ExecTxResult
		block := func(minutesBefore int64, txs [][]byte) error {
			rs, err := d.Block(start-minutesBefore*min, txs)
			results = rs
			for _, r := range rs {
				if r.Code != 0 {
					rejected++
				}
			}
			// A refused transaction leaves its signer's nonce where it
			// was: continue from the committed ones.
			s = d.App.State()
			for k, acc := range s.Accounts {
				nonces[k] = acc.Nonce
			}
			return err
		}
		var txs [][]byte
		var total int64
		for i, st := range cfg.Stations {
			if st.Demand[w] > 0 {
				txs = append(txs, sign(keys[i], Body{Type: "demand", Window: win, Wh: st.Demand[w]}))
				total += st.Demand[w]
			}
		}
		margin := Body{Type: "margin", Window: win, Wh: cfg.Margin[w]}
		if cfg.Slack != nil {
			margin.Slack = cfg.Slack[w]
		}
		if cfg.Fee != nil {
			margin.Congestion = cfg.Fee[w]
		}
		txs = append(txs, sign(gridKey, margin))
		if err := block(28, txs); err != nil {
			return nil, err
		}
		if err := block(24, nil); err != nil { // rights assigned
			return nil, err
		}
		wstate := s.Windows[win]
		rightsOf := func(i int) int64 {
			if wstate == nil {
				return 0
			}
			return wstate.Rights[hexKeys[i]]
		}
		dw := DayWindow{Index: w, Demand: total, Margin: cfg.Margin[w]}
		initial := make([]int64, len(cfg.Stations))
		for i := range cfg.Stations {
			r := rightsOf(i)
			initial[i] = r
			dw.RightsBefore += r
			stRes[i].RightsBefore += r
			stRes[i].Demand += cfg.Stations[i].Demand[w]
		}
		values := make([]int64, len(cfg.Stations))
		for i := range values {
			values[i] = int64(50 + rng.IntN(450))
		}
		sorted := append([]int64(nil), values...)
		sort.Slice(sorted, func(a, b int) bool { return sorted[a] < sorted[b] })
		median := sorted[len(sorted)/2]
		txs = nil
		for i, st := range cfg.Stations {
			rights := rightsOf(i)
			if values[i] >= median {
				if short := st.Demand[w] - rights; short > 0 {
					txs = append(txs, sign(keys[i], Body{Type: "order", Window: win, Side: "buy", Price: values[i], Wh: short}))
				}
			} else if rights > 1 {
				txs = append(txs, sign(keys[i], Body{Type: "order", Window: win, Side: "sell", Price: values[i], Wh: rights / 2}))
			}
		}
		if err := block(22, txs); err != nil {
			return nil, err
		}
		if err := block(18, nil); err != nil { // cleared and settled
			return nil, err
		}
		wstate = s.Windows[win]

		// P2P for what the auction left: the residuals of the orders (a
		// match the security check refused, a reputation bound, a
		// self-trade skipped; never McAfee's reduced units) matched by
		// price-time priority.
		txs = nil
		if wstate != nil {
			orders := make([]market.Order, len(wstate.Orders))
			for i, o := range wstate.Orders {
				orders[i] = o.Order
			}
			matches, err := market.MatchP2P(market.Residual(orders, wstate.Trades, wstate.Reduced), nil)
			if err != nil {
				return nil, fmt.Errorf("ledger: window %d: %w", w, err)
			}
			for _, m := range matches {
				c := Contract{ID: fmt.Sprintf("%d-%s-%s", win, m.Buy, m.Sell), Window: win, Buyer: m.Buyer, Seller: m.Seller, Wh: m.Qty, Price: m.BuyerPrice}
				sig, err := SignContract(c, cfg.Chain, keys[idx[m.Seller]])
				if err != nil {
					return nil, err
				}
				txs = append(txs, sign(keys[idx[m.Buyer]], Body{Type: "p2p", Window: win, Contract: &c, CounterSig: sig}))
				dw.P2P = append(dw.P2P, DayContract{ID: c.ID, Buy: m.Buy, Sell: m.Sell, Buyer: name(m.Buyer), Seller: name(m.Seller), Wh: m.Qty, Price: c.Price})
			}
		}
		if err := block(10, txs); err != nil {
			return nil, err
		}
		for i := range dw.P2P {
			if r := results[i]; r.Code == 0 {
				dw.P2P[i].Settled = true
			} else {
				dw.P2P[i].Refused = r.Log
			}
		}
		wstate = s.Windows[win]

		// Delivery: the grid company meters what each station drew.
		penalty := make([]int64, len(cfg.Stations))
		if wstate != nil {
			delivered := map[string]int64{}
			for i, st := range cfg.Stations {
				delivered[hexKeys[i]] = st.metered(w)
				penalty[i] = s.Accounts[hexKeys[i]].Balance
			}
			if err := block(-1, [][]byte{sign(gridKey, Body{Type: "delivery", Window: win, Delivered: delivered})}); err != nil {
				return nil, err
			}
			wstate = s.Windows[win]
			for i := range cfg.Stations {
				penalty[i] -= s.Accounts[hexKeys[i]].Balance // metering moves nothing else
			}
		}

		dw.Rejected = rejected
		if wstate != nil {
			dw.Rho = float64(wstate.RhoPPM) / 1e6
			dw.RhoPPM = wstate.RhoPPM
			dw.Headroom, dw.CongestionFee = wstate.Slack, wstate.Congestion
			dw.Trades, dw.Failed, dw.Price = len(wstate.Trades), len(wstate.Failed), wstate.Price
			dw.Orders = len(wstate.Orders)
			for _, o := range wstate.Orders {
				if o.Side == market.Buy {
					dw.Bids++
					dw.BidWh += o.Qty
				} else {
					dw.Asks++
					dw.AskWh += o.Qty
				}
				dw.Book = append(dw.Book, BookOrder{ID: o.ID, Station: name(o.Trader), Seq: o.Seq, Side: o.Side.String(), Price: o.Price, Wh: o.Qty})
			}
			sort.SliceStable(dw.Book, func(a, b int) bool {
				x, y := dw.Book[a], dw.Book[b]
				if x.Side != y.Side {
					return x.Side == market.Buy.String()
				}
				if x.Price != y.Price {
					if x.Side == market.Buy.String() {
						return x.Price > y.Price
					}
					return x.Price < y.Price
				}
				return x.Seq < y.Seq
			})
			dayTrade := func(t market.Trade) DayTrade {
				return DayTrade{Buy: t.Buy, Sell: t.Sell, Buyer: name(t.Buyer), Seller: name(t.Seller), Wh: t.Qty, BuyerPrice: t.BuyerPrice, SellerPrice: t.SellerPrice}
			}
			for _, t := range wstate.Trades {
				dw.AuctionTrades = append(dw.AuctionTrades, dayTrade(t))
				dw.Volume += t.Qty
				stRes[idx[t.Buyer]].Bought += t.Qty
				stRes[idx[t.Seller]].Sold += t.Qty
			}
			for _, f := range wstate.Failed {
				dw.Refused = append(dw.Refused, DayRefusal{DayTrade: dayTrade(f.Trade), Bus: f.Bus, Before: f.Before, After: f.After, Limit: f.Limit, Reason: f.Reason()})
			}
			for _, r := range wstate.Reduced {
				dw.Reduced = append(dw.Reduced, DayReduction{Order: r.Order, Station: name(r.Trader), Side: r.Side.String(), Wh: r.Qty})
			}
			for _, c := range wstate.Contracts {
				dw.Contracts++
				dw.P2PVolume += c.Wh
				stRes[idx[c.Buyer]].P2PBought += c.Wh
				stRes[idx[c.Seller]].P2PSold += c.Wh
			}
			for i, st := range cfg.Stations {
				r := wstate.Rights[hexKeys[i]]
				if st.Demand[w] > 0 || r > 0 || initial[i] > 0 {
					dw.Rights = append(dw.Rights, WindowRights{Station: st.Name, Demand: st.Demand[w], Initial: initial[i], Final: r, Delivered: st.metered(w), Penalty: penalty[i]})
				}
				stRes[i].RightsAfter += r
				diff := st.Demand[w] - r
				if diff > 0 {
					dw.Unmet += diff
				} else {
					dw.Excess -= diff
				}
				dev := st.metered(w) - r
				stRes[i].Deviation += max(dev, -dev)
			}
			dw.Income = wstate.Income
			for _, bus := range sortedKeys(wstate.Congestion) {
				if wstate.Congestion[bus] > 0 {
					dw.Congested = append(dw.Congested, bus)
				}
			}
		}
		res.Income.TradeFees += dw.Income.TradeFees
		res.Income.Congestion += dw.Income.Congestion
		res.Income.Spread += dw.Income.Spread
		res.Income.Penalties += dw.Income.Penalties
		res.Windows = append(res.Windows, dw)
	}
	s := d.App.State()
	for i, st := range cfg.Stations {
		acc := s.Accounts[hexKeys[i]]
		res.Balances[st.Name] = acc.Balance
		stRes[i].Balance = acc.Balance
		stRes[i].Reputation = s.Reputation[hexKeys[i]]
	}
	res.Stations = stRes
	res.GridFees = s.Accounts[hexOf(gridKey)].Balance
	res.Money = s.Money()
	if res.Money != money {
		return nil, fmt.Errorf("ledger: money not conserved over the day: %d at genesis, %d at the end", money, res.Money)
	}
	if res.GridFees != res.Income.Total() {
		return nil, fmt.Errorf("ledger: the grid company holds %d but its income by window sums to %d", res.GridFees, res.Income.Total())
	}
	res.AppHash = fmt.Sprintf("%x", s.Hash())
	res.Blocks = d.Height
	return res, nil
}
