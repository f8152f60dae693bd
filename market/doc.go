// Package market is the charging-rights market of DESIGN.md C7 (seed 003):
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
// brute force).
//
// Still to come for C7 (issue 7): delivery windows and their phases,
// demand, margin and satisfaction rate, reputation updates, congestion fees
// with the grid's line security check, the P2P phase, settlement and
// penalties, rolling price formation, V2V reverse auctions, and the
// CometBFT ledger that carries it all.
package market
