package market

import (
	"errors"
	"fmt"
	"slices"
	"sort"
)

// Side says whether an order buys or sells charging rights.
type Side uint8

// The two sides of the book.
const (
	Buy Side = iota
	Sell
)

func (s Side) String() string {
	if s == Buy {
		return "buy"
	}
	return "sell"
}

// Order is a limit order for charging rights. Quantities are Wh and prices
// milli-currency per kWh, both integers, so that every node of the ledger
// computes the same result.
type Order struct {
	ID     string
	Trader string
	Side   Side
	Price  int64  // limit price, milli-currency per kWh
	Qty    int64  // Wh
	Seq    uint64 // submission order: lower first (time priority)
}

// Rule is how a matched book is priced.
type Rule uint8

// Clearing rules.
const (
	// Uniform: every trade at one price, the midpoint of the bid and the
	// ask of the last unit where demand still meets supply; bids at or
	// above it and asks at or below it trade by price-time priority.
	Uniform Rule = iota
	// PayAsBid: every buyer pays its own bid and every seller receives
	// its own ask; the spread is the platform's surplus.
	PayAsBid
	// McAfee: McAfee's (1992) truthful trade reduction. If the price
	// midway between the first excluded bid and ask lies between the
	// last included ones, every included unit trades there; otherwise the
	// last unit is dropped, buyers pay the last included bid and sellers
	// receive the last included ask.
	McAfee
)

// ParseRule reads a rule's name.
func ParseRule(s string) (Rule, error) {
	switch s {
	case "uniform":
		return Uniform, nil
	case "pay-as-bid":
		return PayAsBid, nil
	case "mcafee":
		return McAfee, nil
	}
	return 0, fmt.Errorf("clearing rule %q: use uniform, pay-as-bid or mcafee", s)
}

func (r Rule) String() string {
	return [...]string{"uniform", "pay-as-bid", "mcafee"}[r]
}

// Trade is one fill between a buy and a sell order.
type Trade struct {
	Buy, Sell     string // order IDs
	Buyer, Seller string
	Qty           int64 // Wh
	BuyerPrice    int64 // what the buyer pays, per kWh
	SellerPrice   int64 // what the seller receives, per kWh
}

// Result is a cleared book.
type Result struct {
	Trades  []Trade
	Volume  int64 // Wh traded
	Price   int64 // the uniform or McAfee price when there is one, else 0
	Surplus int64 // what buyers pay minus what sellers receive, milli-currency (>= 0)
	// Reduced are the units McAfee's trade reduction took out: the k-th
	// bid unit and the k-th ask unit (1 Wh each) of the price-time ranked
	// book. They must not trade again in the same window (see Residual),
	// or the reduction is undone and the rule stops being truthful.
	Reduced []Reduction
}

// Reduction is one unit that McAfee's trade reduction removed from an
// order.
type Reduction struct {
	Order  string // order ID
	Trader string
	Side   Side
	Qty    int64 // Wh (always 1: the rule's unit)
}

// ErrOrder is wrapped by every rejection of an order.
var ErrOrder = errors.New("invalid order")

// Validate checks one order.
func (o *Order) Validate() error {
	switch {
	case o.ID == "":
		return fmt.Errorf("%w: no id", ErrOrder)
	case o.Trader == "":
		return fmt.Errorf("%w %s: no trader", ErrOrder, o.ID)
	case o.Side != Buy && o.Side != Sell:
		return fmt.Errorf("%w %s: side %d is neither buy nor sell", ErrOrder, o.ID, o.Side)
	case o.Price < 0 || o.Price > MaxPrice:
		return fmt.Errorf("%w %s: price %d outside 0..%d milli-currency per kWh", ErrOrder, o.ID, o.Price, int64(MaxPrice))
	case o.Qty <= 0 || o.Qty > MaxQty:
		return fmt.Errorf("%w %s: quantity %d Wh outside 1..%d", ErrOrder, o.ID, o.Qty, int64(MaxQty))
	}
	return nil
}

// Bounds that keep every product of price and quantity inside int64.
const (
	MaxPrice = 1 << 31 // milli-currency per kWh (two million currency units)
	MaxQty   = 1 << 40 // Wh (about a TWh)
)

// Allowed reports whether buyer may trade with seller (reputation levels,
// P2P restrictions); nil allows every pair of different traders.
type Allowed func(buyer, seller string) bool

// Clear matches bids and asks by price-time priority and prices the result
// by rule. Bids go highest price first, asks lowest first, ties by Seq
// (and orders with the same price and Seq by ID); each bid takes the best
// asks it crosses, partially where quantities differ. A pair of orders
// from the same trader, or one that allowed refuses, is skipped and the
// match goes on with the next ask: it never ends the matching. The orders
// are not modified.
func Clear(orders []Order, rule Rule, allowed Allowed) (*Result, error) {
	bk, err := newBook(orders)
	if err != nil {
		return nil, err
	}
	bids, asks := bk.bids, bk.asks
	// The uniform and McAfee prices come from where supply meets demand,
	// ignoring who owns which order; only orders at least as good as the
	// marginal unit take part, so that every trade is individually
	// rational at that price even when skipped pairs reshuffle who trades
	// with whom.
	limit := int64(-1) // no limit
	k := efficientVolume(bids, asks)
	var uniform, mcBuy, mcSell int64
	var reduced []Reduction
	switch rule {
	case Uniform:
		if k > 0 {
			bp, _ := unitAt(bids, k)
			ap, _ := unitAt(asks, k)
			uniform = (bp + ap) / 2
			bids, asks = atLeast(bids, uniform), atMost(asks, uniform)
		}
	case McAfee:
		limit = mcafeeVolume(bids, asks, k)
		mcBuy, mcSell = mcafeePrices(bids, asks, k)
		if k > 0 {
			bp, _ := unitAt(bids, k)
			ap, _ := unitAt(asks, k)
			if limit < k {
				b, a := &orders[bids.ord[orderAt(bids, k)]], &orders[asks.ord[orderAt(asks, k)]]
				reduced = []Reduction{{Order: b.ID, Trader: b.Trader, Side: Buy, Qty: 1}, {Order: a.ID, Trader: a.Trader, Side: Sell, Qty: 1}}
			}
			bids, asks = atLeast(bids, bp), atMost(asks, ap)
		}
	}
	trades := bk.match(bids, asks, allowed, limit)
	res := &Result{Trades: trades, Reduced: reduced}
	for i := range trades {
		res.Volume += trades[i].Qty
	}
	if len(trades) == 0 {
		return res, nil
	}
	switch rule {
	case Uniform:
		// The midpoint of the marginal unit's bid and ask: every
		// participating bid is at least it, every ask at most it.
		res.Price = uniform
		for i := range trades {
			trades[i].BuyerPrice, trades[i].SellerPrice = res.Price, res.Price
		}
	case PayAsBid:
		// Each side at its own limit, as matched.
	case McAfee:
		for i := range trades {
			trades[i].BuyerPrice, trades[i].SellerPrice = mcBuy, mcSell
		}
		if mcBuy == mcSell {
			res.Price = mcBuy
		}
	}
	for i := range trades {
		t := &trades[i]
		res.Surplus += value(t.Qty, t.BuyerPrice) - value(t.Qty, t.SellerPrice)
	}
	return res, nil
}

// value is the payment for qty Wh at price per kWh, rounded down to whole
// milli-currency.
func value(qty, price int64) int64 { return qty * price / 1000 }

// match fills bids against asks in priority order, up to limit Wh in total
// (limit < 0: no limit). Trades carry the orders' own limit prices.
func (bk *book) match(bids, asks side, allowed Allowed, limit int64) []Trade {
	fills := bk.fill(bids, asks, allowed, limit)
	// Written in a loop of their own, exactly sized: the Orders behind
	// the fills are reached in random order, and with nothing else in the
	// loop many of those reads are in flight at once.
	trades := make([]Trade, len(fills))
	for f, x := range fills {
		b, a := &bk.orders[bids.ord[x.bid]], &bk.orders[asks.ord[x.ask]]
		trades[f] = Trade{Buy: b.ID, Sell: a.ID, Buyer: b.Trader, Seller: a.Trader, Qty: x.qty, BuyerPrice: b.Price, SellerPrice: a.Price}
	}
	return trades
}

// fill is one trade of match: positions in the two sides and Wh.
type fill struct {
	bid, ask uint32
	qty      int64
}

// fill runs match's price-time priority on the compact columns alone; an
// Order is read only where two trader hashes agree (to compare the names)
// or allowed must be asked.
func (bk *book) fill(bids, asks side, allowed Allowed, limit int64) []fill {
	rem := slices.Clone(asks.qty)
	first := 0 // asks before first are exhausted
	// Every fill but the last completes a bid or exhausts an ask, so there
	// are at most as many fills as participating orders.
	fills := make([]fill, 0, min(bids.len()+asks.len(), 1<<22))
	var volume int64
	for i := range bids.price {
		bp, bt := bids.price[i], bids.trader[i]
		need := bids.qty[i]
		for j := first; j < len(rem) && need > 0; j++ {
			if asks.price[j] > bp {
				break // asks only get dearer
			}
			if rem[j] == 0 {
				continue
			}
			// Different hashes are different traders; equal ones are
			// compared in full.
			if asks.trader[j] == bt && bk.orders[asks.ord[j]].Trader == bk.orders[bids.ord[i]].Trader {
				continue // skip the pair, not the match
			}
			if allowed != nil && !allowed(bk.orders[bids.ord[i]].Trader, bk.orders[asks.ord[j]].Trader) {
				continue
			}
			q := min(need, rem[j])
			if limit >= 0 {
				q = min(q, limit-volume)
				if q <= 0 {
					return fills
				}
			}
			fills = append(fills, fill{bid: uint32(i), ask: uint32(j), qty: q})
			need -= q
			rem[j] -= q
			volume += q
		}
		for first < len(rem) && rem[first] == 0 {
			first++
		}
	}
	return fills
}

// unitAt returns the price of the k-th unit (1-based) of a sorted side, or
// ok false if the side has fewer units.
func unitAt(s side, k int64) (price int64, ok bool) {
	if i := orderAt(s, k); i < s.len() {
		return s.price[i], true
	}
	return 0, false
}

// orderAt returns the position in s of the order holding the k-th unit
// (1-based), or s.len() if the side has fewer units.
func orderAt(s side, k int64) int {
	for i, q := range s.qty {
		if k <= q {
			return i
		}
		k -= q
	}
	return s.len()
}

// mcafeeVolume is the number of units McAfee's rule trades, ignoring
// trader identities, given k, the efficient volume: k if the midpoint of
// unit k+1's prices lies in [ask_k, bid_k], else k-1.
func mcafeeVolume(bids, asks side, k int64) int64 {
	if k == 0 {
		return 0
	}
	if _, _, whole := mcafeeSplit(bids, asks, k); whole {
		return k
	}
	return k - 1
}

// mcafeePrices returns what McAfee's buyers pay and sellers receive: one
// price p0 when all k units trade, else bid_k and ask_k.
func mcafeePrices(bids, asks side, k int64) (buy, sell int64) {
	if k == 0 {
		return 0, 0
	}
	buy, sell, _ = mcafeeSplit(bids, asks, k)
	return buy, sell
}

// mcafeeSplit decides McAfee's case for k > 0: whole is true, with both
// prices the midpoint p0 of unit k+1, when p0 lies in [ask_k, bid_k];
// otherwise the prices are bid_k and ask_k.
func mcafeeSplit(bids, asks side, k int64) (buy, sell int64, whole bool) {
	bk, _ := unitAt(bids, k)
	ak, _ := unitAt(asks, k)
	b1, okb := unitAt(bids, k+1)
	a1, oka := unitAt(asks, k+1)
	if okb && oka {
		if p := (b1 + a1) / 2; ak <= p && p <= bk {
			return p, p, true
		}
	}
	return bk, ak, false
}

// efficientVolume is k, the largest number of units with the k-th highest
// bid at least the k-th lowest ask, found by walking both sides in blocks.
func efficientVolume(bids, asks side) int64 {
	var k int64
	i, j := 0, 0
	var ri, rj int64
	if bids.len() > 0 {
		ri = bids.qty[0]
	}
	if asks.len() > 0 {
		rj = asks.qty[0]
	}
	for i < bids.len() && j < asks.len() && bids.price[i] >= asks.price[j] {
		q := min(ri, rj)
		k += q
		ri -= q
		rj -= q
		if ri == 0 {
			i++
			if i < bids.len() {
				ri = bids.qty[i]
			}
		}
		if rj == 0 {
			j++
			if j < asks.len() {
				rj = asks.qty[j]
			}
		}
	}
	return k
}

// atLeast keeps the sorted bids priced at least p (a prefix).
func atLeast(bids side, p int64) side {
	n := sort.Search(bids.len(), func(i int) bool { return bids.price[i] < p })
	return bids.prefix(n)
}

// atMost keeps the sorted asks priced at most p (a prefix).
func atMost(asks side, p int64) side {
	n := sort.Search(asks.len(), func(i int) bool { return asks.price[i] > p })
	return asks.prefix(n)
}
