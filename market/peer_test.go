package market

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// peerBook is the book both clearings see in BenchmarkClearVsNumpy:
// randomBook's 10^6 orders with buyers and sellers disjoint, so that no
// pair is skipped as a self-trade and the identity-blind numpy peer must
// give the same trades as Clear.
func peerBook(n int) []Order {
	orders := randomBook(rand.New(rand.NewPCG(9, 9)), n/2, n/2, 10000, n/10)
	for i := range orders {
		if orders[i].Side == Sell {
			orders[i].Trader = "s" + orders[i].Trader
		}
	}
	return orders
}

// writeBook writes orders in the format of testdata/peer_clear.py.
func writeBook(path string, orders []Order) error {
	n := len(orders)
	buf := make([]byte, 16+32*n)
	copy(buf, "GVBOOK1\n")
	binary.LittleEndian.PutUint64(buf[8:], uint64(n))
	for i, o := range orders {
		for c, v := range []int64{int64(o.Side), o.Price, o.Qty, int64(o.Seq)} {
			binary.LittleEndian.PutUint64(buf[16+8*(c*n+i):], uint64(v))
		}
	}
	return os.WriteFile(path, buf, 0o600)
}

// numpyPython finds a python3 that imports numpy: Debian's /usr/bin/python3
// first (apt-get install -y python3-numpy), then python3 on PATH.
func numpyPython() (string, bool) {
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(py, "-c", "import numpy").Run() == nil {
			return py, true
		}
	}
	return "", false
}

// peerAnswer is one line of peer_clear.py's output.
type peerAnswer struct {
	seconds                                          float64
	k, volume, fills, price, buyer, seller, checksum int64
}

func parsePeer(line string) (peerAnswer, error) {
	f := strings.Fields(line)
	if len(f) != 8 {
		return peerAnswer{}, fmt.Errorf("peer answered %q, want 8 fields", line)
	}
	var a peerAnswer
	var err error
	if a.seconds, err = strconv.ParseFloat(f[0], 64); err != nil {
		return a, err
	}
	for i, p := range []*int64{&a.k, &a.volume, &a.fills, &a.price, &a.buyer, &a.seller, &a.checksum} {
		if *p, err = strconv.ParseInt(f[i+1], 10, 64); err != nil {
			return a, fmt.Errorf("peer field %d of %q: %v", i+2, line, err)
		}
	}
	return a, nil
}

// expectPeer is what the peer must answer for res, computed from the
// previous implementation's sort (ranks within each side) and Clear's
// trades: volume, fills, prices and the trade-list checksum.
func expectPeer(orders []Order, rule Rule, res *Result) peerAnswer {
	bids, asks, _ := refSortBook(orders)
	rank := make(map[string]int64, len(orders))
	for i, o := range bids {
		rank[o.ID] = int64(i)
	}
	for i, o := range asks {
		rank[o.ID] = int64(i)
	}
	want := peerAnswer{k: refEfficientVolume(bids, asks), volume: res.Volume, fills: int64(len(res.Trades)), price: res.Price}
	for _, t := range res.Trades {
		want.checksum += t.Qty*(rank[t.Buy]+1) + rank[t.Sell]
		if rule == PayAsBid {
			want.buyer += t.Qty * t.BuyerPrice
			want.seller += t.Qty * t.SellerPrice
		}
	}
	if rule != PayAsBid && len(res.Trades) > 0 {
		want.buyer, want.seller = res.Trades[0].BuyerPrice, res.Trades[0].SellerPrice
	}
	return want
}

// BenchmarkClearVsNumpy clears one book of 10^6 orders with Clear and with
// the numpy peer (testdata/peer_clear.py, a long-lived process fed one
// rule per iteration), alternating, for every rule. ns/op is Clear's time
// alone; numpy-ns/op is the peer's own timing of its clearing (its start-up
// and file loading excluded); go/numpy is the ratio of the two totals over
// the same alternating iterations. The first iteration checks that both
// found the same trades. It skips where no python3 has numpy.
func BenchmarkClearVsNumpy(b *testing.B) {
	py, ok := numpyPython()
	if !ok {
		b.Skip("no python3 with numpy: the peer needs it (Debian: apt-get install -y python3-numpy, which gives /usr/bin/python3 with numpy)")
	}
	const n = 1_000_000
	orders := peerBook(n)
	path := filepath.Join(b.TempDir(), "book.bin")
	if err := writeBook(path, orders); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(py, filepath.Join("testdata", "peer_clear.py"), path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close() // the peer ends at the end of its input
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second): // only a hung peer gets here
			cmd.Process.Kill()
			<-done
		}
	})
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "ready" {
		b.Fatalf("peer did not start: %q %v", lines.Text(), lines.Err())
	}
	for _, rule := range []Rule{Uniform, PayAsBid, McAfee} {
		b.Run(rule.String(), func(b *testing.B) {
			var goTime time.Duration
			var peerSeconds float64
			first := true
			for b.Loop() {
				t0 := time.Now()
				res, err := Clear(orders, rule, nil)
				goTime += time.Since(t0)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if _, err := fmt.Fprintln(stdin, rule); err != nil {
					b.Fatal(err)
				}
				if !lines.Scan() {
					b.Fatalf("peer stopped: %v", lines.Err())
				}
				got, err := parsePeer(lines.Text())
				if err != nil {
					b.Fatal(err)
				}
				peerSeconds += got.seconds
				if first {
					want := expectPeer(orders, rule, res)
					got.seconds = 0
					if got != want {
						b.Fatalf("%v: numpy peer %+v, Clear %+v", rule, got, want)
					}
					first = false
				}
				b.StartTimer()
			}
			b.ReportMetric(peerSeconds*1e9/float64(b.N), "numpy-ns/op")
			b.ReportMetric(goTime.Seconds()/peerSeconds, "go/numpy")
		})
	}
}
