package market

import "fmt"

// Residual returns what of each order is left for the window's P2P phase
// after the auction: its quantity less what trades filled, less any unit
// McAfee's trade reduction removed. Orders with nothing left are dropped;
// the rest keep their ID, trader, price and Seq, so the P2P phase ranks
// them by the same price-time priority as the auction.
//
// Keeping the reduced units out is what keeps the auction and the P2P
// phase together truthful under McAfee: were they re-traded, every window
// would trade the efficient volume again, and a buyer (or seller) could
// gain by shading its order into the reduced position to be matched in
// P2P at a better price (TestMcAfeeWithP2P shows the gain). With them out,
// on a book without matching restrictions the residual bids and asks never
// cross, so P2P adds nothing and the combined mechanism is McAfee's.
//
// trades are the fills that settled; fills that did not settle (a match
// the security check refused) leave their units in the residual.
func Residual(orders []Order, trades []Trade, reduced []Reduction) []Order {
	used := make(map[string]int64, len(orders))
	for _, t := range trades {
		used[t.Buy] += t.Qty
		used[t.Sell] += t.Qty
	}
	for _, r := range reduced {
		used[r.Order] += r.Qty
	}
	var out []Order
	for _, o := range orders {
		if left := o.Qty - used[o.ID]; left > 0 {
			o.Qty = left
			out = append(out, o)
		}
	}
	return out
}

// MatchP2P is the P2P phase's matching of the orders the auction left
// (seed 003), by price-time priority: bids are ranked highest price first
// and asks lowest first, ties by Seq (earlier submission first, then by
// ID for equal Seqs). The best
// bid trades with the best ask it crosses (ask price <= bid price) from
// another trader that allowed accepts, for as much as both have left, and
// goes on with the next such ask until it is filled or none is left; then
// the next bid goes. Pairs of one trader's orders or refused pairs are
// skipped, never ending the match.
//
// Each match is priced at the midpoint of the two limit prices, rounded
// down to whole milli-currency per kWh: floor((bid + ask) / 2). The buyer
// pays it and the seller receives it, so it lies between both limits and
// the two parties split the gains from trade (to within the rounding).
// With buyers and sellers distinct, the match reaches the largest gains
// from trade of any matching (TestMatchP2PBruteForce).
func MatchP2P(orders []Order, allowed Allowed) ([]Trade, error) {
	bk, err := newBook(orders)
	if err != nil {
		return nil, fmt.Errorf("p2p: %w", err)
	}
	trades := bk.match(bk.bids, bk.asks, allowed, -1)
	for i := range trades {
		p := (trades[i].BuyerPrice + trades[i].SellerPrice) / 2
		trades[i].BuyerPrice, trades[i].SellerPrice = p, p
	}
	return trades, nil
}
