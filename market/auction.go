package market

import (
	"cmp"
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
// by rule. Bids go highest price first, asks lowest first, ties by Seq;
// each bid takes the best asks it crosses, partially where quantities
// differ. A pair of orders from the same trader, or one that allowed
// refuses, is skipped and the match goes on with the next ask: it never
// ends the matching. The orders are not modified.
func Clear(orders []Order, rule Rule, allowed Allowed) (*Result, error) {
	bids, asks, err := sortBook(orders)
	if err != nil {
		return nil, err
	}
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
			bk, _ := unitAt(bids, k)
			ak, _ := unitAt(asks, k)
			uniform = (bk + ak) / 2
			bids, asks = atLeast(bids, uniform), atMost(asks, uniform)
		}
	case McAfee:
		limit = mcafeeVolume(bids, asks)
		mcBuy, mcSell = mcafeePrices(bids, asks)
		if k > 0 {
			bk, _ := unitAt(bids, k)
			ak, _ := unitAt(asks, k)
			if limit < k {
				b, a := orderAt(bids, k), orderAt(asks, k)
				reduced = []Reduction{{Order: b.ID, Trader: b.Trader, Side: Buy, Qty: 1}, {Order: a.ID, Trader: a.Trader, Side: Sell, Qty: 1}}
			}
			bids, asks = atLeast(bids, bk), atMost(asks, ak)
		}
	}
	trades := match(bids, asks, allowed, limit)
	res := &Result{Trades: trades, Reduced: reduced}
	for _, t := range trades {
		res.Volume += t.Qty
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
	for _, t := range trades {
		res.Surplus += value(t.Qty, t.BuyerPrice) - value(t.Qty, t.SellerPrice)
	}
	return res, nil
}

// sortBook validates orders and splits them into bids, highest price
// first, and asks, lowest first, ties by Seq: price-time priority.
func sortBook(orders []Order) (bids, asks []Order, err error) {
	bids = make([]Order, 0, len(orders))
	asks = make([]Order, 0, len(orders))
	seen := make(map[string]struct{}, len(orders))
	for i := range orders {
		o := orders[i]
		if err := o.Validate(); err != nil {
			return nil, nil, err
		}
		if _, dup := seen[o.ID]; dup {
			return nil, nil, fmt.Errorf("%w %s: id used twice", ErrOrder, o.ID)
		}
		seen[o.ID] = struct{}{}
		if o.Side == Buy {
			bids = append(bids, o)
		} else {
			asks = append(asks, o)
		}
	}
	slices.SortFunc(bids, func(a, b Order) int {
		if c := cmp.Compare(b.Price, a.Price); c != 0 {
			return c
		}
		return cmp.Compare(a.Seq, b.Seq)
	})
	slices.SortFunc(asks, func(a, b Order) int {
		if c := cmp.Compare(a.Price, b.Price); c != 0 {
			return c
		}
		return cmp.Compare(a.Seq, b.Seq)
	})
	return bids, asks, nil
}

// value is the payment for qty Wh at price per kWh, rounded down to whole
// milli-currency.
func value(qty, price int64) int64 { return qty * price / 1000 }

// match fills bids against asks in priority order, up to limit Wh in total
// (limit < 0: no limit). Trades carry the orders' own limit prices.
func match(bids, asks []Order, allowed Allowed, limit int64) []Trade {
	rem := make([]int64, len(asks))
	for j := range asks {
		rem[j] = asks[j].Qty
	}
	first := 0 // asks before first are exhausted
	trades := make([]Trade, 0, min(len(bids)+len(asks), 1<<20))
	var volume int64
	for _, b := range bids {
		need := b.Qty
		for j := first; j < len(asks) && need > 0; j++ {
			a := &asks[j]
			if a.Price > b.Price {
				break // asks only get dearer
			}
			if rem[j] == 0 || a.Trader == b.Trader || (allowed != nil && !allowed(b.Trader, a.Trader)) {
				continue // skip the pair, not the match
			}
			q := min(need, rem[j])
			if limit >= 0 {
				q = min(q, limit-volume)
				if q <= 0 {
					return trades
				}
			}
			trades = append(trades, Trade{Buy: b.ID, Sell: a.ID, Buyer: b.Trader, Seller: a.Trader, Qty: q, BuyerPrice: b.Price, SellerPrice: a.Price})
			need -= q
			rem[j] -= q
			volume += q
		}
		for first < len(asks) && rem[first] == 0 {
			first++
		}
	}
	return trades
}

// unitAt returns the price of the k-th unit (1-based) of a sorted side, or
// ok false if the side has fewer units.
func unitAt(side []Order, k int64) (price int64, ok bool) {
	for _, o := range side {
		if k <= o.Qty {
			return o.Price, true
		}
		k -= o.Qty
	}
	return 0, false
}

// orderAt returns the order holding the k-th unit (1-based) of a sorted
// side; the caller knows the side has at least k units.
func orderAt(side []Order, k int64) Order {
	for _, o := range side {
		if k <= o.Qty {
			return o
		}
		k -= o.Qty
	}
	return Order{}
}

// mcafeeVolume is the number of units McAfee's rule trades, ignoring
// trader identities: k, the largest count with bid_k >= ask_k, if the
// midpoint of unit k+1's prices lies in [ask_k, bid_k], else k-1.
func mcafeeVolume(bids, asks []Order) int64 {
	k := efficientVolume(bids, asks)
	if k == 0 {
		return 0
	}
	bk, _ := unitAt(bids, k)
	ak, _ := unitAt(asks, k)
	b1, okb := unitAt(bids, k+1)
	a1, oka := unitAt(asks, k+1)
	if okb && oka {
		if p := (b1 + a1) / 2; ak <= p && p <= bk {
			return k
		}
	}
	return k - 1
}

// mcafeePrices returns what McAfee's buyers pay and sellers receive: one
// price p0 when all k units trade, else bid_k and ask_k.
func mcafeePrices(bids, asks []Order) (buy, sell int64) {
	k := efficientVolume(bids, asks)
	if k == 0 {
		return 0, 0
	}
	bk, _ := unitAt(bids, k)
	ak, _ := unitAt(asks, k)
	b1, okb := unitAt(bids, k+1)
	a1, oka := unitAt(asks, k+1)
	if okb && oka {
		if p := (b1 + a1) / 2; ak <= p && p <= bk {
			return p, p
		}
	}
	return bk, ak
}

// efficientVolume is k, the largest number of units with the k-th highest
// bid at least the k-th lowest ask, found by walking both sides in blocks.
func efficientVolume(bids, asks []Order) int64 {
	var k int64
	i, j := 0, 0
	var ri, rj int64
	if len(bids) > 0 {
		ri = bids[0].Qty
	}
	if len(asks) > 0 {
		rj = asks[0].Qty
	}
	for i < len(bids) && j < len(asks) && bids[i].Price >= asks[j].Price {
		q := min(ri, rj)
		k += q
		ri -= q
		rj -= q
		if ri == 0 {
			i++
			if i < len(bids) {
				ri = bids[i].Qty
			}
		}
		if rj == 0 {
			j++
			if j < len(asks) {
				rj = asks[j].Qty
			}
		}
	}
	return k
}

// atLeast keeps the sorted bids priced at least p (a prefix).
func atLeast(bids []Order, p int64) []Order {
	n := sort.Search(len(bids), func(i int) bool { return bids[i].Price < p })
	return bids[:n]
}

// atMost keeps the sorted asks priced at most p (a prefix).
func atMost(asks []Order, p int64) []Order {
	n := sort.Search(len(asks), func(i int) bool { return asks[i].Price > p })
	return asks[:n]
}
