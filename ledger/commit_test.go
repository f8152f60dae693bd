package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	bolt "go.etcd.io/bbolt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
)

// commitWorld is a genesis with a grid company and four stations, and a
// market day's worth of blocks for it: demand, margin, orders, clearing,
// a transfer and metered delivery, so that every kind of leaf changes.
func commitWorld(t *testing.T) (*Genesis, []func() (int64, [][]byte)) {
	t.Helper()
	grid := newParty(1)
	g := &Genesis{Params: Params{Chain: "test", MinuteMillis: minute, Rule: "uniform", FeePPM: 10_000}, Accounts: map[string]Account{grid.key: {Role: RoleGrid}}}
	var st []*party
	for i := 0; i < 4; i++ {
		p := newParty(byte(60 + i))
		st = append(st, p)
		g.Accounts[p.key] = Account{Role: RoleStation, Balance: 1_000_000}
	}
	sign := func(p *party, b Body) []byte { tx := p.tx(t, b); p.nonce++; return tx }
	const w = 50
	blocks := []func() (int64, [][]byte){
		func() (int64, [][]byte) {
			txs := [][]byte{sign(grid, Body{Type: "margin", Window: w, Wh: 60_000})}
			for i, p := range st {
				txs = append(txs, sign(p, Body{Type: "demand", Window: w, Wh: int64(10_000 + 5_000*i)}))
			}
			return at(w, 28), txs
		},
		func() (int64, [][]byte) { return at(w, 24), nil },
		func() (int64, [][]byte) {
			return at(w, 22), [][]byte{
				sign(st[0], Body{Type: "order", Window: w, Side: "sell", Price: 100, Wh: 3_000}),
				sign(st[1], Body{Type: "order", Window: w, Side: "buy", Price: 300, Wh: 2_000}),
				sign(st[2], Body{Type: "order", Window: w, Side: "buy", Price: 250, Wh: 2_000}),
				sign(st[3], Body{Type: "transfer", To: st[0].key, Amount: 7}),
			}
		},
		func() (int64, [][]byte) { return at(w, 16), nil },
		func() (int64, [][]byte) {
			return at(w, -31), [][]byte{sign(grid, Body{Type: "delivery", Window: w, Delivered: map[string]int64{st[0].key: 9_000, st[1].key: 20_000}})}
		},
	}
	return g, blocks
}

// TestAppHashDeterministic: two nodes fed the same blocks agree on every
// hash, each incremental hash equals the whole state's recomputed one, and
// a node reopened from its directory reports the same hash.
func TestAppHashDeterministic(t *testing.T) {
	g, blocks := commitWorld(t)
	dir := t.TempDir()
	gen, _ := json.Marshal(g)
	var apps []*App
	for _, d := range []string{dir, ""} {
		a, err := NewApp(d)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.InitChain(context.Background(), &abci.RequestInitChain{ChainId: "test", AppStateBytes: gen}); err != nil {
			t.Fatal(err)
		}
		apps = append(apps, a)
	}
	for h, blk := range blocks {
		now, txs := blk()
		var hashes [][]byte
		for _, a := range apps {
			res, err := a.FinalizeBlock(context.Background(), &abci.RequestFinalizeBlock{Height: int64(h + 1), Time: time.UnixMilli(now), Txs: txs})
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res.TxResults {
				if r.Code != 0 {
					t.Fatalf("block %d tx %d: %s", h+1, i, r.Log)
				}
			}
			if _, err := a.Commit(context.Background(), &abci.RequestCommit{}); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(res.AppHash, a.hash) || !bytes.Equal(a.hash, a.state.fullHash()) {
				t.Fatalf("block %d: finalize hash %x, committed %x, whole state %x", h+1, res.AppHash, a.hash, a.state.fullHash())
			}
			hashes = append(hashes, a.hash)
		}
		if !bytes.Equal(hashes[0], hashes[1]) {
			t.Fatalf("block %d: nodes disagree: %x vs %x", h+1, hashes[0], hashes[1])
		}
	}
	if s := apps[0].State(); len(s.Windows[50].Trades) == 0 || !s.Windows[50].Metered {
		t.Fatal("the blocks did not trade and meter: the test would not cover those leaves")
	}
	if err := apps[0].Close(); err != nil {
		t.Fatal(err)
	}
	reopened, err := NewApp(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	if s := reopened.State(); !bytes.Equal(mustJSON(t, s), mustJSON(t, apps[0].state)) {
		t.Fatal("the state reloaded from state.db differs from the one written")
	}
	info, _ := reopened.Info(context.Background(), &abci.RequestInfo{})
	if !bytes.Equal(info.LastBlockAppHash, apps[0].hash) || info.LastBlockHeight != int64(len(blocks)) {
		t.Fatalf("restart: height %d hash %x, before %x", info.LastBlockHeight, info.LastBlockAppHash, apps[0].hash)
	}
}

// TestTamperedStateRefused: a state.db whose leaves no longer hash to its
// recorded hash is refused with an error that says so, and the file is
// left as it was for inspection.
func TestTamperedStateRefused(t *testing.T) {
	g, blocks := commitWorld(t)
	dir := t.TempDir()
	d := &Driver{}
	a, err := NewApp(dir)
	if err != nil {
		t.Fatal(err)
	}
	gen, _ := json.Marshal(g)
	if _, err := a.InitChain(context.Background(), &abci.RequestInitChain{ChainId: "test", AppStateBytes: gen}); err != nil {
		t.Fatal(err)
	}
	d.App = a
	for _, blk := range blocks[:3] {
		now, txs := blk()
		if _, err := d.Block(now, txs); err != nil {
			t.Fatal(err)
		}
	}
	var station string
	for k, acc := range a.state.Accounts {
		if acc.Role == RoleStation {
			station = k
			break
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, storeFile)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(leafBucket))
		var acc Account
		if err := json.Unmarshal(b.Get([]byte(accountKey(station))), &acc); err != nil {
			return err
		}
		acc.Balance += 1_000 // money from nowhere
		v, _ := json.Marshal(&acc)
		return b.Put([]byte(accountKey(station)), v)
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	tampered, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewApp(dir)
	if err == nil || !strings.Contains(err.Error(), "does not match its recorded hash") || !strings.Contains(err.Error(), "restore app/") {
		t.Fatalf("tampered state loaded: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, tampered) {
		t.Fatal("the refused file was changed")
	}
}

// TestLegacyStateImported: an earlier version's state.json (same
// commitment) is moved into state.db once, with its hash checked; one
// hashed the old way (no commitment version) is named as such, not as
// tampered, and left in place.
func TestLegacyStateImported(t *testing.T) {
	g, blocks := commitWorld(t)
	d, err := NewDriver(g)
	if err != nil {
		t.Fatal(err)
	}
	for _, blk := range blocks[:4] {
		now, txs := blk()
		if _, err := d.Block(now, txs); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	legacy, _ := json.Marshal(legacyState{State: d.App.state, Hash: d.App.hash, Version: commitVersion})
	path := filepath.Join(dir, legacyFile)
	if err := os.WriteFile(path, legacy, 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := NewApp(dir)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := a.Info(context.Background(), &abci.RequestInfo{})
	if !bytes.Equal(info.LastBlockAppHash, d.App.hash) || info.LastBlockHeight != 4 {
		t.Fatalf("imported: height %d hash %x, want 4 %x", info.LastBlockHeight, info.LastBlockAppHash, d.App.hash)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("state.json still there after the import: %v", err)
	}
	a.Close()
	if a, err = NewApp(dir); err != nil || !bytes.Equal(a.hash, d.App.hash) {
		t.Fatalf("reopened after the import: %v", err)
	}
	a.Close()

	dir = t.TempDir()
	var f map[string]json.RawMessage
	_ = json.Unmarshal(legacy, &f)
	delete(f, "commitment_version")
	old, _ := json.Marshal(f)
	path = filepath.Join(dir, legacyFile)
	if err := os.WriteFile(path, old, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewApp(dir); err == nil || !strings.Contains(err.Error(), "commitment version 0") {
		t.Fatalf("old-format state: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, old) {
		t.Fatal("the refused state.json was changed")
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestSignatureVerifiedOnce: a transaction admitted by CheckTx is not
// verified again when its block is finalized, while one that changed by a
// single byte is verified (and refused) however it arrives.
func TestSignatureVerifiedOnce(t *testing.T) {
	g, _ := commitWorld(t)
	d, err := NewDriver(g)
	if err != nil {
		t.Fatal(err)
	}
	from, to := newParty(60), newParty(61)
	var txs [][]byte
	for i := 0; i < 5; i++ {
		txs = append(txs, from.tx(t, Body{Type: "transfer", To: to.key, Amount: 1}))
		from.nonce++
	}
	before := sigChecks.Load()
	for i, tx := range txs[:1] {
		r, _ := d.App.CheckTx(context.Background(), &abci.RequestCheckTx{Tx: tx})
		if r.Code != 0 {
			t.Fatalf("CheckTx %d: %s", i, r.Log)
		}
	}
	for _, tx := range txs {
		// The mempool's view runs ahead with each admitted transaction;
		// a recheck after a commit must not verify again either.
		_, _ = d.App.CheckTx(context.Background(), &abci.RequestCheckTx{Tx: tx})
		_, _ = d.App.CheckTx(context.Background(), &abci.RequestCheckTx{Tx: tx, Type: abci.CheckTxType_Recheck})
	}
	now := time.Now().UnixMilli()
	res, err := d.Block(now, txs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Code != 0 {
			t.Fatalf("tx %d: %s", i, r.Log)
		}
	}
	if n := sigChecks.Load() - before; n != int64(len(txs)) {
		t.Fatalf("%d signature verifications for %d transactions: want one each", n, len(txs))
	}
	// Forged: a valid envelope with one signature byte changed is refused
	// by CheckTx and by FinalizeBlock, whether CheckTx saw it first or not.
	good := from.tx(t, Body{Type: "transfer", To: to.key, Amount: 1})
	var env Envelope
	if err := json.Unmarshal(good, &env); err != nil {
		t.Fatal(err)
	}
	env.Sig[0] ^= 1
	forged, _ := json.Marshal(env)
	for _, admit := range []bool{true, false} {
		if admit {
			if r, _ := d.App.CheckTx(context.Background(), &abci.RequestCheckTx{Tx: forged}); r.Code != Code(ErrSignature) {
				t.Fatalf("CheckTx of a forged signature: code %d %s", r.Code, r.Log)
			}
		}
		res, err := d.Block(now+1, [][]byte{forged})
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Code != Code(ErrSignature) {
			t.Fatalf("FinalizeBlock of a forged signature: code %d %s", res[0].Code, res[0].Log)
		}
	}
}

// TestVerdictsBounded: the cache forgets its oldest verdicts beyond its
// bound instead of growing with the chain.
func TestVerdictsBounded(t *testing.T) {
	v := newVerdicts()
	for i := 0; i < verdictCap+100; i++ {
		var h [32]byte
		h[0], h[1], h[2] = byte(i), byte(i>>8), byte(i>>16)
		v.add(h)
	}
	if len(v.ok) != verdictCap {
		t.Fatalf("%d verdicts kept, bound %d", len(v.ok), verdictCap)
	}
	if _, ok := v.ok[[32]byte{}]; ok {
		t.Fatal("the oldest verdict was kept")
	}
}

// TestCloneIsDeep: changing a clone through every path a block takes
// leaves the original, and its hash, as they were.
func TestCloneIsDeep(t *testing.T) {
	g, blocks := commitWorld(t)
	d, err := NewDriver(g)
	if err != nil {
		t.Fatal(err)
	}
	for _, blk := range blocks[:3] {
		now, txs := blk()
		if _, err := d.Block(now, txs); err != nil {
			t.Fatal(err)
		}
	}
	orig := d.App.state
	before, hash := mustJSON(t, orig), orig.Hash()
	c := orig.Clone()
	now, _ := blocks[3]()
	c.BeginBlock(4, now)
	now, txs := blocks[4]()
	c.BeginBlock(5, now)
	for _, tx := range txs {
		b, signer, err := Decode(tx)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Deliver(b, signer, now); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(mustJSON(t, orig), before) || !bytes.Equal(orig.Hash(), hash) {
		t.Fatal("changing the clone changed the original")
	}
	if bytes.Equal(c.Hash(), hash) || !bytes.Equal(c.Hash(), c.fullHash()) {
		t.Fatal("the clone's hash did not follow its changes")
	}
}
