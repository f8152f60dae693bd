#!/usr/bin/python3
"""Vectorised sort-and-scan clearing of a gridveil order book, in numpy.

The peer of market.Clear for BenchmarkClearVsNumpy (market/peer_test.go):
the same book, the same rules, the same answer on books without
self-trade pairs (the benchmark's buyers and sellers are disjoint), done
the way a numpy programmer would do it: sort each side by one composite
key, cumulative sums of the quantities, the efficient volume and the
prices from searchsorted on the cumulative sums, and the fills as the
merged block boundaries of both sides up to the traded volume.

Usage: peer_clear.py BOOK. BOOK is the benchmark's file: the 8 bytes
b"GVBOOK1\\n", the order count n as a little-endian uint64, then four
little-endian int64 columns of n values each: side (0 buy, 1 sell), price
(milli-currency per kWh), quantity (Wh) and Seq. The script loads it, says
"ready", then reads one rule per line on stdin (uniform, pay-as-bid,
mcafee) and answers each with one line:

    seconds k volume fills price buyer_price seller_price checksum

where seconds is the clearing's own time (perf_counter; loading and the
interpreter's start-up excluded), k the efficient volume, fills the
number of trades and checksum the sum over trades of
qty * (bid rank + 1) + ask rank, which pins down the trade list.
"""

import sys
import time

import numpy as np

MAX_PRICE = 1 << 31


def load(path):
    with open(path, "rb") as f:
        if f.read(8) != b"GVBOOK1\n":
            sys.exit("peer_clear.py: %s is not a GVBOOK1 file" % path)
        n = int(np.frombuffer(f.read(8), dtype="<u8")[0])
        cols = np.frombuffer(f.read(32 * n), dtype="<i8")
    if cols.size != 4 * n:
        sys.exit("peer_clear.py: %s is truncated: %d of %d values" % (path, cols.size, 4 * n))
    return cols.reshape(4, n)


def ranked(price, seq, descending):
    """The order of one side by price-time priority."""
    p = MAX_PRICE - price if descending else price
    if seq.size and seq.min() >= 0 and seq.max() < (1 << 32):
        return np.argsort((p << 32) | seq)  # one int64 key: Seqs are unique
    return np.lexsort((seq, p))


def unit_price(cum, price, k):
    """The price of the k-th unit (1-based) of a sorted side, or None."""
    i = np.searchsorted(cum, k, side="left")
    return int(price[i]) if i < price.size else None


def clear(book, rule):
    side, price, qty, seq = book
    buy = side == 0
    bp, bq = price[buy], qty[buy]
    ap, aq = price[~buy], qty[~buy]
    ob = ranked(bp, seq[buy], True)
    oa = ranked(ap, seq[~buy], False)
    bp, bq, ap, aq = bp[ob], bq[ob], ap[oa], aq[oa]
    bc, ac = np.cumsum(bq), np.cumsum(aq)

    # Efficient volume: the largest block boundary u (of either side) with
    # bid(u) >= ask(u); the test is monotone in u, so count the true ones.
    k = 0
    if bp.size and ap.size:
        top = min(bc[-1], ac[-1])
        for c, other_cum, mine, other, is_bid in ((bc, ac, bp, ap, True), (ac, bc, ap, bp, False)):
            c = c[c <= top]
            j = np.searchsorted(other_cum, c, side="left")
            ok = (mine[: c.size] >= other[j]) if is_bid else (other[j] >= mine[: c.size])
            m = int(np.count_nonzero(ok))
            if m:
                k = max(k, int(c[m - 1]))

    volume, price_u, buyer, seller = k, 0, 0, 0
    bn, an = bp.size, ap.size
    if k > 0:
        bk, ak = unit_price(bc, bp, k), unit_price(ac, ap, k)
        if rule == "uniform":
            price_u = (bk + ak) // 2
            bn = int(np.searchsorted(-bp, -price_u, side="right"))
            an = int(np.searchsorted(ap, price_u, side="right"))
            volume = int(min(bc[bn - 1] if bn else 0, ac[an - 1] if an else 0))
            buyer = seller = price_u
        elif rule == "mcafee":
            b1, a1 = unit_price(bc, bp, k + 1), unit_price(ac, ap, k + 1)
            if b1 is not None and a1 is not None and ak <= (b1 + a1) // 2 <= bk:
                buyer = seller = price_u = (b1 + a1) // 2
            else:
                buyer, seller, volume = bk, ak, k - 1
        elif rule != "pay-as-bid":
            sys.exit("peer_clear.py: unknown rule %r" % rule)

    # The fills: every boundary of either side's cumulative quantity up to
    # the volume ends one trade.
    ends = np.union1d(bc[bc < volume], ac[ac < volume])
    ends = np.append(ends, volume) if volume > 0 else ends
    fq = np.diff(ends, prepend=0)
    ib = np.searchsorted(bc, ends, side="left")
    ia = np.searchsorted(ac, ends, side="left")
    if rule == "pay-as-bid":
        buyer, seller = int(np.dot(fq, bp[ib])), int(np.dot(fq, ap[ia]))  # totals
    checksum = int(np.dot(fq, ib + 1) + ia.sum())
    return k, volume, fq.size, price_u, buyer, seller, checksum


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: peer_clear.py BOOK")
    book = load(sys.argv[1])
    print("ready", flush=True)
    for line in sys.stdin:
        rule = line.strip()
        t0 = time.perf_counter()
        out = clear(book, rule)
        dt = time.perf_counter() - t0
        print("%.9f %s" % (dt, " ".join(str(v) for v in out)), flush=True)


if __name__ == "__main__":
    main()
