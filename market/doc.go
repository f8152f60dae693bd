// Package market is the charging-rights market of docs/ARCHITECTURE.md C7 (seed 003):
// a deterministic core, in integer units (Wh, milli-currency per kWh), that
// every node of the consortium ledger runs to the same result.
//
// This first part is the double auction of charging rights (seed 003, the
// two-way auction phase): Clear matches bids and asks by price-time
// priority with partial fills, skips pairs of one trader's own orders or
// pairs that reputation levels forbid without ending the match, and prices
// the matches by one of three rules: a uniform price at the crossing of
// supply and demand, pay-as-bid, or McAfee's (1992) trade-reduction rule,
// which is truthful and never runs a deficit for single-unit traders
// without matching restrictions (tested against every misreport on random
// books). Gains from trade are maximal among all matchings (tested against
// brute force). McAfee's result names the units its trade reduction
// removed.
//
// MatchP2P is the P2P phase's matching of what the auction left
// (Residual): price-time priority, each match at the midpoint of the two
// limits rounded down, checked against brute force over every matching.
// Residual keeps McAfee's reduced units out of P2P, so that the two phases
// together stay truthful for single-unit traders (tested exhaustively; the
// same test shows the gain a trader gets if they were re-traded).
//
// Reputation ranks stations into levels that bound whom each may match
// (seed 003) and updates scores from delivery against rights and ratings.
// RollingPrices is seed 003's rolling price formation: posted slot prices
// move by the excess of demand over the margin until they settle, checked
// against a bisection on the demand curve. ReverseAuction is seed 004's V2V
// matching of a charging EV with discharging EVs: cheapest first, paid the
// first rejected price, truthful for single-unit sellers (tested against
// every misreport).
//
// Clearing works on a compact copy of the book (book.go): each side's
// order is found by an LSD radix sort of 16-byte keys (price, Seq, index)
// rather than by sorting Orders through a comparator, repeated ids by a
// flat open-addressing hash set rather than a map[string], and
// self-trades by comparing hashes of the traders' names (names compared
// in full only when the hashes agree); the matching runs on columns of
// prices and quantities and writes each Trade once. Results are those of
// the straightforward implementation, which ref_test.go keeps as the
// oracle (TestClearMatchesPrevious); ties of price and Seq, which the
// ledger never produces, go by ID.
//
// Window phases, the satisfaction rate, initial rights, the line security
// check, P2P contracts, settlement, metering and penalties run in package
// ledger.
package market
