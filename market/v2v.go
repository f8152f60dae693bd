package market

import (
	"cmp"
	"fmt"
	"slices"
)

// Offer is a discharging EV's ask in a V2V reverse auction: up to Qty Wh at
// no less than Price per kWh. The ID is the pseudonym the EV authenticated
// with (C6), not its identity.
type Offer struct {
	ID    string
	Price int64
	Qty   int64
	Seq   uint64
}

// Award is what one discharging EV supplies.
type Award struct {
	ID    string
	Qty   int64 // Wh
	Price int64 // per kWh paid to it
}

// ReverseAuction is seed 004's V2V matching: an aggregator buys need Wh
// for a charging EV from discharging EVs, cheapest first (ties by Seq), at
// no more than limit per kWh. Each winner is paid the price of the first
// rejected offer's unit (a uniform-price, (k+1)-th price auction, truthful
// for single-unit sellers), or limit if every offer under it was taken.
func ReverseAuction(offers []Offer, need, limit int64) ([]Award, error) {
	if need <= 0 || need > MaxQty || limit < 0 || limit > MaxPrice {
		return nil, fmt.Errorf("%w: need %d Wh at limit %d", ErrOrder, need, limit)
	}
	os := make([]Offer, 0, len(offers))
	seen := map[string]bool{}
	for _, o := range offers {
		if o.ID == "" || seen[o.ID] || o.Qty <= 0 || o.Qty > MaxQty || o.Price < 0 || o.Price > MaxPrice {
			return nil, fmt.Errorf("%w: offer %q (duplicate, empty, or out of range)", ErrOrder, o.ID)
		}
		seen[o.ID] = true
		if o.Price <= limit {
			os = append(os, o)
		}
	}
	slices.SortFunc(os, func(a, b Offer) int {
		if c := cmp.Compare(a.Price, b.Price); c != 0 {
			return c
		}
		return cmp.Compare(a.Seq, b.Seq)
	})
	var awards []Award
	left := need
	i := 0
	for ; i < len(os) && left > 0; i++ {
		q := min(left, os[i].Qty)
		awards = append(awards, Award{ID: os[i].ID, Qty: q})
		left -= q
	}
	// The clearing price: the next unit's ask if the last winner has more
	// to give, else the first losing offer, else the buyer's limit.
	price := limit
	switch {
	case len(awards) > 0 && awards[len(awards)-1].Qty < os[i-1].Qty:
		price = os[i-1].Price
	case i < len(os):
		price = os[i].Price
	}
	for k := range awards {
		awards[k].Price = price
	}
	return awards, nil
}
