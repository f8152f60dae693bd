package market

// The previous implementation of Clear and MatchP2P, which sorted Order
// structs through comparators and checked ids with a map. Only function
// names changed.

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
)

// refClear is Clear as it was: it matches bids and asks by price-time
// priority and prices the result by rule. Bids go highest price first, asks lowest first, ties by Seq;
// each bid takes the best asks it crosses, partially where quantities
// differ. A pair of orders from the same trader, or one that allowed
// refuses, is skipped and the match goes on with the next ask: it never
// ends the matching. The orders are not modified.
func refClear(orders []Order, rule Rule, allowed Allowed) (*Result, error) {
	bids, asks, err := refSortBook(orders)
	if err != nil {
		return nil, err
	}
	// The uniform and McAfee prices come from where supply meets demand,
	// ignoring who owns which order; only orders at least as good as the
	// marginal unit take part, so that every trade is individually
	// rational at that price even when skipped pairs reshuffle who trades
	// with whom.
	limit := int64(-1) // no limit
	k := refEfficientVolume(bids, asks)
	var uniform, mcBuy, mcSell int64
	var reduced []Reduction
	switch rule {
	case Uniform:
		if k > 0 {
			bk, _ := refUnitAt(bids, k)
			ak, _ := refUnitAt(asks, k)
			uniform = (bk + ak) / 2
			bids, asks = refAtLeast(bids, uniform), refAtMost(asks, uniform)
		}
	case McAfee:
		limit = refMcafeeVolume(bids, asks)
		mcBuy, mcSell = refMcafeePrices(bids, asks)
		if k > 0 {
			bk, _ := refUnitAt(bids, k)
			ak, _ := refUnitAt(asks, k)
			if limit < k {
				b, a := refOrderAt(bids, k), refOrderAt(asks, k)
				reduced = []Reduction{{Order: b.ID, Trader: b.Trader, Side: Buy, Qty: 1}, {Order: a.ID, Trader: a.Trader, Side: Sell, Qty: 1}}
			}
			bids, asks = refAtLeast(bids, bk), refAtMost(asks, ak)
		}
	}
	trades := refMatch(bids, asks, allowed, limit)
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
		res.Surplus += refValue(t.Qty, t.BuyerPrice) - refValue(t.Qty, t.SellerPrice)
	}
	return res, nil
}

// sortBook validates orders and splits them into bids, highest price
// first, and asks, lowest first, ties by Seq: price-time priority.
func refSortBook(orders []Order) (bids, asks []Order, err error) {
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
func refValue(qty, price int64) int64 { return qty * price / 1000 }

// match fills bids against asks in priority order, up to limit Wh in total
// (limit < 0: no limit). Trades carry the orders' own limit prices.
func refMatch(bids, asks []Order, allowed Allowed, limit int64) []Trade {
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
func refUnitAt(side []Order, k int64) (price int64, ok bool) {
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
func refOrderAt(side []Order, k int64) Order {
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
func refMcafeeVolume(bids, asks []Order) int64 {
	k := refEfficientVolume(bids, asks)
	if k == 0 {
		return 0
	}
	bk, _ := refUnitAt(bids, k)
	ak, _ := refUnitAt(asks, k)
	b1, okb := refUnitAt(bids, k+1)
	a1, oka := refUnitAt(asks, k+1)
	if okb && oka {
		if p := (b1 + a1) / 2; ak <= p && p <= bk {
			return k
		}
	}
	return k - 1
}

// mcafeePrices returns what McAfee's buyers pay and sellers receive: one
// price p0 when all k units trade, else bid_k and ask_k.
func refMcafeePrices(bids, asks []Order) (buy, sell int64) {
	k := refEfficientVolume(bids, asks)
	if k == 0 {
		return 0, 0
	}
	bk, _ := refUnitAt(bids, k)
	ak, _ := refUnitAt(asks, k)
	b1, okb := refUnitAt(bids, k+1)
	a1, oka := refUnitAt(asks, k+1)
	if okb && oka {
		if p := (b1 + a1) / 2; ak <= p && p <= bk {
			return p, p
		}
	}
	return bk, ak
}

// efficientVolume is k, the largest number of units with the k-th highest
// bid at least the k-th lowest ask, found by walking both sides in blocks.
func refEfficientVolume(bids, asks []Order) int64 {
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
func refAtLeast(bids []Order, p int64) []Order {
	n := sort.Search(len(bids), func(i int) bool { return bids[i].Price < p })
	return bids[:n]
}

// atMost keeps the sorted asks priced at most p (a prefix).
func refAtMost(asks []Order, p int64) []Order {
	n := sort.Search(len(asks), func(i int) bool { return asks[i].Price > p })
	return asks[:n]
}

// refMatchP2P is MatchP2P as it was.
func refMatchP2P(orders []Order, allowed Allowed) ([]Trade, error) {
	bids, asks, err := refSortBook(orders)
	if err != nil {
		return nil, fmt.Errorf("p2p: %w", err)
	}
	trades := refMatch(bids, asks, allowed, -1)
	for i := range trades {
		p := (trades[i].BuyerPrice + trades[i].SellerPrice) / 2
		trades[i].BuyerPrice, trades[i].SellerPrice = p, p
	}
	return trades, nil
}
