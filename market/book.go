package market

import (
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"strings"
)

// book is a validated order book with each side in price-time priority,
// held as compact columns: the clearing scans prices and quantities that
// lie contiguous in priority order, and reaches an Order (its ID and
// trader) through an index only where a pair is tested or a trade
// written. Sorting 16-byte keys by radix instead of 64-byte Orders through
// a comparator, and checking ids with a flat hash set instead of a
// map[string], is what makes clearing 10^6 orders cost a fraction of what
// it did (docs/PERFORMANCE.md, "Clearing").
type book struct {
	orders     []Order
	bids, asks side
}

// side is one side of a book in priority order: bids highest price first,
// asks lowest first, ties by Seq and then by ID.
type side struct {
	price  []int64
	qty    []int64
	trader []uint64 // hash of the trader under idSeed: equal for one trader
	ord    []uint32 // index into book.orders
}

func (s side) len() int { return len(s.price) }

// prefix keeps the side's first n orders.
func (s side) prefix(n int) side { return side{s.price[:n], s.qty[:n], s.trader[:n], s.ord[:n]} }

// sortKey orders one side of the book: hi is the price made ascending
// (MaxPrice-price for bids), lo the Seq, ix the order's index. An LSD radix
// sort on (hi, lo) is stable, and ties of both are then put in ID order, so
// the result depends on nothing but the orders' own fields: not on the
// order they arrive in.
type sortKey struct {
	lo     uint64
	hi     uint32
	ix     uint32
	qty    int64  // carried through the sort, so that the sorted columns
	trader uint64 // are read off the keys in order, not gathered from orders
}

// newBook validates orders, refuses a repeated id and sorts both sides.
// Errors are those of the first offending order in input order: its
// Validate error, or "id used twice" at the second use of an id.
func newBook(orders []Order) (*book, error) {
	n := len(orders)
	if uint64(n) >= math.MaxUint32 {
		return nil, fmt.Errorf("%w: a book of %d orders; at most %d can be cleared at once", ErrOrder, n, uint32(math.MaxUint32-1))
	}
	// One sequential pass validates, hashes and builds the sort keys; the
	// id set's random probes run afterwards in a loop of their own, where
	// the processor can keep many of them in flight.
	hashes := make([]uint64, n)
	keys := make([]sortKey, n)
	nb, na := 0, n // bids fill keys from the front, asks from the back
	bad, badErr := n, error(nil)
	for i := range orders {
		o := &orders[i]
		if err := o.Validate(); err != nil {
			bad, badErr = i, err
			break
		}
		hashes[i] = maphash.String(idSeed, o.ID)
		th := maphash.String(idSeed, o.Trader)
		if o.Side == Buy {
			keys[nb] = sortKey{lo: o.Seq, hi: uint32(MaxPrice - o.Price), ix: uint32(i), qty: o.Qty, trader: th}
			nb++
		} else {
			na--
			keys[na] = sortKey{lo: o.Seq, hi: uint32(o.Price), ix: uint32(i), qty: o.Qty, trader: th}
		}
	}
	if i := firstRepeat(orders[:bad], hashes[:bad]); i >= 0 {
		return nil, fmt.Errorf("%w %s: id used twice", ErrOrder, orders[i].ID)
	}
	if badErr != nil {
		return nil, badErr
	}
	tmp := make([]sortKey, n)
	bk := radixSort(keys[:nb], tmp[:nb])
	ak := radixSort(keys[nb:], tmp[nb:])
	b := &book{orders: orders}
	b.bids = b.column(bk, true)
	b.asks = b.column(ak, false)
	return b, nil
}

// column puts ties of price and Seq in ID order and reads the sorted
// side's columns off the keys.
func (b *book) column(keys []sortKey, bids bool) side {
	for i := 0; i+1 < len(keys); {
		j := i + 1
		for j < len(keys) && keys[j].hi == keys[i].hi && keys[j].lo == keys[i].lo {
			j++
		}
		if j-i > 1 {
			slices.SortFunc(keys[i:j], func(x, y sortKey) int {
				return strings.Compare(b.orders[x.ix].ID, b.orders[y.ix].ID)
			})
		}
		i = j
	}
	m := len(keys)
	s := side{price: make([]int64, m), qty: make([]int64, m), trader: make([]uint64, m), ord: make([]uint32, m)}
	for i := range keys {
		k := &keys[i]
		p := int64(k.hi)
		if bids {
			p = MaxPrice - p
		}
		s.price[i], s.qty[i], s.trader[i], s.ord[i] = p, k.qty, k.trader, k.ix
	}
	return s
}

// radixSort sorts keys by (hi, lo), stably, one byte per pass from the
// least significant; tmp has the same length and is overwritten. Passes
// where every key has the same byte (the high bytes of small Seqs, most
// bytes of a narrow price range) are skipped, so a typical book takes
// four or five passes. It returns whichever of keys and tmp holds the
// result.
func radixSort(keys, tmp []sortKey) []sortKey {
	if len(keys) < 2 {
		return keys
	}
	var count [12][256]int
	for i := range keys {
		lo, hi := keys[i].lo, keys[i].hi
		count[0][byte(lo)]++
		count[1][byte(lo>>8)]++
		count[2][byte(lo>>16)]++
		count[3][byte(lo>>24)]++
		count[4][byte(lo>>32)]++
		count[5][byte(lo>>40)]++
		count[6][byte(lo>>48)]++
		count[7][byte(lo>>56)]++
		count[8][byte(hi)]++
		count[9][byte(hi>>8)]++
		count[10][byte(hi>>16)]++
		count[11][byte(hi>>24)]++
	}
	for p := range count {
		c := &count[p]
		digit := func(k *sortKey) byte {
			if p < 8 {
				return byte(k.lo >> (8 * p))
			}
			return byte(k.hi >> (8 * (p - 8)))
		}
		if c[digit(&keys[0])] == len(keys) {
			continue // every key has this byte: the pass would not move anything
		}
		sum := 0
		for d := range c {
			c[d], sum = sum, sum+c[d]
		}
		if p < 8 {
			s := uint(8 * p)
			for i := range keys {
				d := byte(keys[i].lo >> s)
				tmp[c[d]] = keys[i]
				c[d]++
			}
		} else {
			s := uint(8 * (p - 8))
			for i := range keys {
				d := byte(keys[i].hi >> s)
				tmp[c[d]] = keys[i]
				c[d]++
			}
		}
		keys, tmp = tmp, keys
	}
	return keys
}

// idSeed keys the hashes of order ids and traders. A hash only decides
// where an id sits in the id set and which strings are compared in full,
// never a result, so a per-process seed keeps clearing deterministic
// while denying anyone a book of ids chosen to collide.
var idSeed = maphash.MakeSeed()

// firstRepeat returns the smallest i whose orders[i].ID an earlier order
// has, or -1; hashes[i] is the hash of orders[i].ID under idSeed. It fills
// an open-addressing hash set: each slot holds the upper 32 bits of an
// id's hash beside the index of its order plus one (0: empty), so a probe
// compares whole strings only when 32 bits of hash agree.
func firstRepeat(orders []Order, hashes []uint64) int {
	size := 16
	for size < 2*len(orders) {
		size *= 2
	}
	slot := make([]uint64, size)
	mask := uint64(size - 1)
	for i, h := range hashes {
		tag := h >> 32
		for p := h & mask; ; p = (p + 1) & mask {
			e := slot[p]
			if e == 0 {
				slot[p] = tag<<32 | uint64(i+1)
				break
			}
			if e>>32 == tag && orders[e&math.MaxUint32-1].ID == orders[i].ID {
				return i
			}
		}
	}
	return -1
}
