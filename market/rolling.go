package market

import (
	"errors"
	"fmt"
	"math"
)

// Bidder answers a price with the energy it would then take, kW per slot:
// seed 003's participants, whose flexibility shows as the slope of their
// bid curves.
type Bidder interface {
	Demand(price []float64, out []float64)
}

// LinearBidder wants Base[t] - Slope*price[t] kW, clipped to [Min[t], Max[t]]:
// a price-sensitive EV fleet or station.
type LinearBidder struct {
	Base, Min, Max []float64
	Slope          float64 // kW per unit of price
}

// Demand implements Bidder.
func (b LinearBidder) Demand(price, out []float64) {
	for t := range out {
		out[t] = math.Min(math.Max(b.Base[t]-b.Slope*price[t], b.Min[t]), b.Max[t])
	}
}

// RollingResult is the outcome of rolling price formation.
type RollingResult struct {
	Price      []float64 // per slot
	Demand     []float64 // total per slot at that price
	Iterations int
	Converged  bool
}

// ErrNoPrice is returned when the prices do not settle.
var ErrNoPrice = errors.New("rolling prices did not settle")

// RollingPrices is seed 003's real-time rolling price formation: the
// platform posts slot prices, every participant answers with its demand,
// and the platform moves each slot's price by step times the excess of
// demand over the margin (a projected dual ascent, prices >= floor), until
// no slot's excess exceeds tol kW. Each participant sees only the prices;
// the platform sees only totals.
func RollingPrices(bidders []Bidder, margin, floor []float64, step, tol float64, maxIter int) (*RollingResult, error) {
	T := len(margin)
	if len(floor) != T || step <= 0 || tol <= 0 {
		return nil, fmt.Errorf("%w: margin and floor need one value per slot, step and tol must be positive", ErrOrder)
	}
	price := append([]float64(nil), floor...)
	total, one := make([]float64, T), make([]float64, T)
	res := &RollingResult{Price: price, Demand: total}
	for k := 1; k <= maxIter; k++ {
		clear(total)
		for _, b := range bidders {
			b.Demand(price, one)
			for t, v := range one {
				total[t] += v
			}
		}
		worst := 0.0
		for t := range price {
			excess := total[t] - margin[t]
			// Complementary slackness: excess may be negative only where
			// the price already sits on its floor.
			if excess > 0 || price[t] > floor[t] {
				worst = math.Max(worst, math.Abs(excess))
			}
			price[t] = math.Max(floor[t], price[t]+step*excess)
		}
		res.Iterations = k
		if worst <= tol {
			res.Converged = true
			// Report the demand at the final prices.
			clear(total)
			for _, b := range bidders {
				b.Demand(price, one)
				for t, v := range one {
					total[t] += v
				}
			}
			return res, nil
		}
	}
	return res, fmt.Errorf("%w after %d iterations", ErrNoPrice, maxIter)
}
