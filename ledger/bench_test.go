package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cometbft/cometbft/abci/example/kvstore"
	abci "github.com/cometbft/cometbft/abci/types"
	rpclocal "github.com/cometbft/cometbft/rpc/client/local"
)

// BenchmarkDeliver is the state machine alone: decode, verify and apply
// one signed transfer.
func BenchmarkDeliver(b *testing.B) {
	s, _, st := world(b, "uniform")
	txs := make([][]byte, 0, 1<<16)
	for i := 0; i < cap(txs); i++ {
		p := st[i%4]
		txs = append(txs, p.tx(b, Body{Type: "transfer", To: st[(i+1)%4].key, Amount: 1}))
		p.nonce++
	}
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if i == len(txs) {
			b.StopTimer()
			s, _, _ = world(b, "uniform")
			i = 0
			b.StartTimer()
		}
		if err := deliver(b, s, txs[i], 0); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tx/s")
}

// BenchmarkCommitted measures transactions per second committed by one
// in-process validator: transfers from many accounts broadcast to the
// mempool, timed until the last one is in a committed block.
func BenchmarkCommitted(b *testing.B) {
	if testing.Short() {
		b.Skip("starts a CometBFT node")
	}
	const accounts, perAccount = 200, 20
	grid := newParty(1)
	g := &Genesis{Params: Params{Chain: "test", MinuteMillis: 60000, Rule: "uniform"}, Accounts: map[string]Account{grid.key: {Role: RoleGrid}}}
	var ps []*party
	for i := 0; i < accounts; i++ {
		var seed [32]byte
		seed[0], seed[1], seed[2] = byte(i), byte(i>>8), 0xbe // distinct from newParty keys
		p := newParty(0)
		p.priv = edKey(seed)
		p.key = fmt.Sprintf("%x", p.priv.Public())
		ps = append(ps, p)
		g.Accounts[p.key] = Account{Role: RoleStation, Balance: 1 << 40}
	}
	n, err := StartNode(NodeConfig{Home: b.TempDir(), Genesis: g, Block: 200 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = n.Stop() }()
	for n.App.State() == nil || n.App.State().Height < 2 {
		time.Sleep(20 * time.Millisecond)
	}
	ctx := context.Background()
	var total int
	var elapsed time.Duration
	for b.Loop() {
		var txs [][]byte
		for k := 0; k < perAccount; k++ {
			for i, p := range ps {
				txs = append(txs, p.tx(b, Body{Type: "transfer", To: ps[(i+1)%accounts].key, Amount: 1}))
				p.nonce++
			}
		}
		t0 := time.Now()
		for _, tx := range txs {
			res, err := n.Client.BroadcastTxSync(ctx, tx)
			if err != nil || res.Code != 0 {
				b.Fatalf("broadcast: %v %s", err, res.Log)
			}
		}
		last := ps[len(ps)-1]
		for {
			s := n.App.State()
			if s.Accounts[last.key].Nonce == last.nonce {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		elapsed += time.Since(t0)
		total += len(txs)
	}
	b.ReportMetric(float64(total)/elapsed.Seconds(), "tx/s")
}

// BenchmarkWindow10k trades one window for 10,000 stations through the
// application (demand, margin, rights, 10,000 orders, clearing and
// settlement), one block per phase, and reports the slowest block: it must
// fit well inside a phase (the shortest, bids, is 3 minutes).
func BenchmarkWindow10k(b *testing.B) {
	const n = 10_000
	cfg := DayConfig{Chain: "bench", Rule: "uniform", FeePPM: 10_000, Margin: []int64{0}, Seed: 1}
	var total int64
	for i := 0; i < n; i++ {
		d := int64(5_000 + (i*7919)%40_000)
		cfg.Stations = append(cfg.Stations, DayStation{Name: fmt.Sprintf("s%05d", i), Demand: []int64{d}})
		total += d
	}
	cfg.Margin[0] = total * 8 / 10
	for b.Loop() {
		t0 := time.Now()
		day, err := RunDay(cfg)
		if err != nil {
			b.Fatal(err)
		}
		if day.Windows[0].Trades == 0 {
			b.Fatal("no trades")
		}
		b.ReportMetric(time.Since(t0).Seconds(), "s/window")
		b.ReportMetric(float64(day.Windows[0].Orders+n+1)/time.Since(t0).Seconds(), "tx/s")
	}
}

// BenchmarkVsKVStore is the driver of issue 18's ledger target: one
// in-process validator with gridveil's market app and one with CometBFT's
// kvstore example app, on the same node settings (startWith, 200 ms
// blocks), each sent the same number of transactions of the same size
// through BroadcastTxSync, timed until its mempool is empty (every
// transaction committed). The two alternate, each round starting with the
// other, and it reports each app's committed tx/s and market/kvstore.
//
// stations is how many station accounts the market's genesis holds (200
// of them send): 200 is a toy state, 10,000 the operating scale of
// BenchmarkWindow10k, where a state written whole at every Commit shows.
func BenchmarkVsKVStore(b *testing.B) {
	if testing.Short() {
		b.Skip("starts two CometBFT nodes")
	}
	for _, n := range []int{200, 10_000} {
		b.Run(fmt.Sprintf("stations=%d", n), func(b *testing.B) { vsKVStore(b, n) })
	}
}

func vsKVStore(b *testing.B, stations int) {
	const senders, perAccount = 200, 20
	grid := newParty(1)
	g := &Genesis{Params: Params{Chain: "test", MinuteMillis: 60000, Rule: "uniform"}, Accounts: map[string]Account{grid.key: {Role: RoleGrid}}}
	var ps []*party
	for i := 0; i < stations; i++ {
		var seed [32]byte
		seed[0], seed[1], seed[2] = byte(i), byte(i>>8), 0xbe
		p := newParty(0)
		p.priv = edKey(seed)
		p.key = fmt.Sprintf("%x", p.priv.Public())
		ps = append(ps, p)
		g.Accounts[p.key] = Account{Role: RoleStation, Balance: 1 << 40}
	}
	ps = ps[:senders]
	accounts := senders
	settings := func(home string) NodeConfig { return NodeConfig{Home: home, Genesis: g, Block: 200 * time.Millisecond} }

	app, err := NewApp(filepath.Join(b.TempDir(), "app"))
	if err != nil {
		b.Fatal(err)
	}
	defer app.Close()
	market, err := startWith(settings(b.TempDir()), app)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = market.Stop(); market.Wait() }()
	kv := kvstore.NewPersistentApplication(b.TempDir())
	defer kv.Close()
	kvNode, err := startWith(settings(b.TempDir()), kv)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = kvNode.Stop(); kvNode.Wait() }()
	mc, kc := rpclocal.New(market), rpclocal.New(kvNode)
	ctx := context.Background()
	for _, c := range []*rpclocal.Local{mc, kc} {
		for {
			st, err := c.Status(ctx)
			if err == nil && st.SyncInfo.LatestBlockHeight >= 2 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// run broadcasts txs to c and waits until the mempool has drained.
	run := func(c *rpclocal.Local, txs [][]byte) time.Duration {
		t0 := time.Now()
		for _, tx := range txs {
			res, err := c.BroadcastTxSync(ctx, tx)
			if err != nil || res.Code != 0 {
				b.Fatalf("broadcast: %v %+v", err, res)
			}
		}
		// Bounded: a mempool that keeps the same count for a minute is
		// stuck, and the benchmark says so instead of hanging.
		last, still := -1, 0
		for {
			u, err := c.NumUnconfirmedTxs(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if u.Total == 0 {
				break
			}
			if u.Total == last {
				still++
			} else {
				last, still = u.Total, 0
			}
			if still > 12_000 {
				b.Fatalf("%d transactions stayed in the mempool for a minute", u.Total)
			}
			time.Sleep(5 * time.Millisecond)
		}
		return time.Since(t0)
	}
	var total int
	var tm, tk time.Duration
	round := 0
	for b.Loop() {
		var mtx, ktx [][]byte
		for k := 0; k < perAccount; k++ {
			for i, p := range ps {
				tx := p.tx(b, Body{Type: "transfer", To: ps[(i+1)%accounts].key, Amount: 1})
				p.nonce++
				mtx = append(mtx, tx)
				// key=value, not key:value: kvstore's PrepareProposal rewrites
				// ':' to '=', so a committed key:value transaction has another
				// hash than its mempool copy, is never removed from the
				// mempool and is proposed again in every block.
				key := fmt.Sprintf("r%d-%d-%d=", round, k, i)
				ktx = append(ktx, []byte(key+strings.Repeat("v", max(1, len(tx)-len(key)))))
			}
		}
		if round%2 == 0 {
			tm += run(mc, mtx)
			tk += run(kc, ktx)
		} else {
			tk += run(kc, ktx)
			tm += run(mc, mtx)
		}
		round++
		total += len(mtx)
		// Committed, not just gone from the mempool: the last transfer's
		// nonce is in the state, the last key is in the store.
		if last := ps[len(ps)-1]; app.State().Accounts[last.key].Nonce != last.nonce {
			b.Fatal("market app: the mempool drained before the last transfer was applied")
		}
		key, _, _ := strings.Cut(string(ktx[len(ktx)-1]), "=")
		q, err := kc.ABCIQuery(ctx, "", []byte(key))
		if err != nil || len(q.Response.Value) == 0 {
			b.Fatalf("kvstore: last key not stored: %v", err)
		}
	}
	m, k := float64(total)/tm.Seconds(), float64(total)/tk.Seconds()
	b.ReportMetric(m, "market-tx/s")
	b.ReportMetric(k, "kvstore-tx/s")
	b.ReportMetric(m/k, "market/kvstore")
	b.ReportMetric(float64(len(ps[0].tx(b, Body{Type: "transfer", To: ps[1].key, Amount: 1}))), "tx-bytes")
}

// BenchmarkBlock is one block of 200 signed transfers through the
// application on disk (FinalizeBlock, then Commit with its synced write),
// at growing numbers of stations in the state: what a block costs the
// application, without consensus. A block that changes 200 accounts
// should cost the same whatever the state holds.
func BenchmarkBlock(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("stations=%d", n), func(b *testing.B) {
			const senders = 200
			grid := newParty(1)
			g := Genesis{Params: Params{Chain: "test", MinuteMillis: 60000, Rule: "uniform"}, Accounts: map[string]Account{grid.key: {Role: RoleGrid}}}
			var ps []*party
			for i := 0; i < n; i++ {
				var seed [32]byte
				seed[0], seed[1], seed[2], seed[3] = byte(i), byte(i>>8), byte(i>>16), 0xbb
				p := newParty(0)
				if i < senders {
					p.priv = edKey(seed)
					p.key = fmt.Sprintf("%x", p.priv.Public())
					ps = append(ps, p)
				} else {
					p.key = fmt.Sprintf("%064x", i) // never signs: no key needed
				}
				g.Accounts[p.key] = Account{Role: RoleStation, Balance: 1 << 40}
			}
			app, err := NewApp(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer app.Close()
			gen, _ := json.Marshal(g)
			ctx := context.Background()
			if _, err := app.InitChain(ctx, &abci.RequestInitChain{ChainId: "test", AppStateBytes: gen}); err != nil {
				b.Fatal(err)
			}
			height := int64(0)
			block := func() {
				height++
				txs := make([][]byte, 0, senders)
				for i, p := range ps {
					txs = append(txs, p.tx(b, Body{Type: "transfer", To: ps[(i+1)%senders].key, Amount: 1}))
					p.nonce++
				}
				b.StartTimer()
				res, err := app.FinalizeBlock(ctx, &abci.RequestFinalizeBlock{Height: height, Time: time.UnixMilli(height * 1000), Txs: txs})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := app.Commit(ctx, &abci.RequestCommit{}); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				for _, r := range res.TxResults {
					if r.Code != 0 {
						b.Fatalf("transfer refused: %s", r.Log)
					}
				}
			}
			b.StopTimer()
			block() // the first commit writes the whole genesis state
			b.ResetTimer()
			b.StopTimer()
			for i := 0; i < b.N; i++ { // not b.Loop: the timer runs only around the block
				block()
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/block")
		})
	}
}
