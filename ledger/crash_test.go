package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	cfg "github.com/cometbft/cometbft/config"
	"github.com/cometbft/cometbft/store"
	"github.com/cometbft/cometbft/types"
)

// The crash test's workload: crashWindows consecutive trading windows of
// crashStations stations (the first half buy, the second half sell rights)
// on a market whose minute lasts crashMinute ms, plus a ring of transfers
// between the stations all along.
const (
	crashStations = 8
	crashWindows  = 3
	crashMinute   = 250 // ms: a 30-minute cycle in 7.5 s
	crashBalance  = 10_000_000
	crashChildEnv = "GRIDVEIL_LEDGER_CRASH_CHILD"
)

func crashGenesis() (*Genesis, *party, []*party) {
	grid := newParty(1)
	g := &Genesis{Params: Params{Chain: "crash", MinuteMillis: crashMinute, Rule: "uniform", FeePPM: 10_000},
		Accounts: map[string]Account{grid.key: {Role: RoleGrid}}}
	var ps []*party
	for i := 0; i < crashStations; i++ {
		p := newParty(byte(40 + i))
		ps = append(ps, p)
		g.Accounts[p.key] = Account{Role: RoleStation, Balance: crashBalance}
	}
	return g, grid, ps
}

// TestMain lets the crash and network tests run this binary as a node
// process, and makes every Commit check its incremental app hash against
// the whole state's. Benchmark runs (-bench) leave that check off: it
// re-encodes the whole state every block, which is what they measure the
// absence of.
func TestMain(m *testing.M) {
	flag.Parse()
	checkCommitments = flag.Lookup("test.bench").Value.String() == ""
	if home := os.Getenv(crashChildEnv); home != "" {
		os.Exit(crashChild(home))
	}
	if home := os.Getenv(nodeChildEnv); home != "" {
		os.Exit(nodeChild(home))
	}
	os.Exit(m.Run())
}

// crashPlan is the workload's first window, fixed on the first start and
// kept in the home directory so that every restart trades the same
// windows.
type crashPlan struct {
	First int64 `json:"first"`
}

// crashChild starts (or restarts) the node on home and plays the
// workload from the committed state: whatever a station has not yet done
// in the current phase of a window, it does now. It exits 0 once the
// last window is past clearing.
func crashChild(home string) int {
	g, grid, ps := crashGenesis()
	planFile := filepath.Join(home, "plan.json")
	var plan crashPlan
	if data, err := os.ReadFile(planFile); err == nil {
		if err := json.Unmarshal(data, &plan); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	} else {
		// The first window whose demand phase starts at least a market
		// minute from now.
		cycle := int64(windowMinutes * crashMinute)
		plan.First = (time.Now().UnixMilli()+30*crashMinute+crashMinute)/cycle + 1
		data, _ := json.Marshal(plan)
		if err := os.WriteFile(planFile, data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}
	n, err := StartNode(NodeConfig{Home: home, Genesis: g, Block: 50 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx := context.Background()
	send := func(s *State, p *party, b Body) {
		// The account's next committed nonce: resending a transaction
		// already in the mempool or a block is rejected by its nonce.
		b.Chain, b.Nonce = "crash", s.Accounts[p.key].Nonce
		tx, _ := Sign(b, p.priv)
		_, _ = n.Client.BroadcastTxSync(ctx, tx)
	}
	last := plan.First + crashWindows - 1
	for {
		s := n.App.State()
		if s == nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		now := time.Now().UnixMilli()
		if w := s.Windows[last]; w != nil && w.Cleared || s.PhaseAt(last, s.Time) == PhaseP2P {
			_ = n.Stop()
			return 0
		}
		for w := plan.First; w <= last; w++ {
			win := s.Windows[w]
			// Act only when the committed block and the clock agree on the
			// phase, so that the transaction lands in it.
			switch ph := s.PhaseAt(w, s.Time); {
			case ph == PhaseDemand && s.PhaseAt(w, now+2*50) == PhaseDemand:
				if win == nil || !win.HasMarg {
					send(s, grid, Body{Type: "margin", Window: w, Wh: 3_000 * crashStations})
				}
				for i, p := range ps {
					if win == nil || win.Demand[p.key] == 0 {
						send(s, p, Body{Type: "demand", Window: w, Wh: int64(2_000 + 500*i)})
					}
				}
			case ph == PhaseBids && s.PhaseAt(w, now+2*50) == PhaseBids:
				for i, p := range ps {
					if hasOrder(win, p.key) {
						continue
					}
					if i < crashStations/2 {
						send(s, p, Body{Type: "order", Window: w, Side: "buy", Wh: 400, Price: int64(200_000 + 10_000*i)})
					} else if win != nil && win.Rights[p.key] >= 300 {
						send(s, p, Body{Type: "order", Window: w, Side: "sell", Wh: 300, Price: int64(150_000 + 10_000*i)})
					}
				}
			}
		}
		// A ring of transfers throughout, whatever the phase.
		for i, p := range ps {
			if s.Accounts[p.key].Nonce < 40 && s.PhaseAt(plan.First, s.Time) != PhaseDemand && s.PhaseAt(plan.First, s.Time) != PhaseBids {
				send(s, p, Body{Type: "transfer", To: ps[(i+1)%len(ps)].key, Amount: 1})
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hasOrder(win *Window, key string) bool {
	if win == nil {
		return false
	}
	for _, o := range win.Orders {
		if o.Trader == key {
			return true
		}
	}
	return false
}

// TestCrashRecovery kills the node process with SIGKILL at random moments
// of a trading session and restarts it until the workload is done. Then it
// replays every committed block, from genesis, through a fresh application
// that never crashed: its app hash must equal the hash CometBFT recorded in
// every block header and the crashed node's persisted hash. A transaction
// lost, applied twice or applied to a stale state by a restart would make
// them differ.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("runs and kills CometBFT node processes")
	}
	home := t.TempDir()
	rng := rand.New(rand.NewPCG(7, 7))
	kills := 0
	deadline := time.Now().Add(90 * time.Second)
	for finished := false; !finished; {
		if time.Now().After(deadline) {
			t.Fatalf("the workload did not finish in 90 s after %d kills", kills)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+home)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		wait := time.Duration(300+rng.IntN(1500)) * time.Millisecond
		if kills >= 5 {
			wait = time.Minute // enough interruptions: let it finish
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("node process failed: %v", err)
			}
			finished = true
		case <-time.After(wait):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-exited
			kills++
		}
	}

	crashed, err := NewApp(filepath.Join(home, "app"))
	if err != nil {
		t.Fatal(err)
	}
	s := crashed.State()
	replayed, headers := replayChain(t, home, s.Height)
	if headers == 0 {
		t.Fatal("no block headers to compare")
	}
	if !bytes.Equal(replayed.hash, crashed.hash) || !bytes.Equal(s.Hash(), crashed.hash) {
		t.Fatalf("after %d blocks the crashed node's app hash %x differs from the replay's %x", s.Height, crashed.hash, replayed.hash)
	}

	// The session did trade, and money is conserved: fees went to the grid
	// company, which is an account too.
	trades := 0
	for _, w := range s.Windows {
		trades += len(w.Trades)
	}
	if trades == 0 {
		t.Fatal("no window traded: the workload did not exercise the market")
	}
	if got, want := s.Money(), int64(crashStations*crashBalance); got != want {
		t.Fatalf("money %d, genesis %d", got, want)
	}
	t.Logf("%d SIGKILLs; %d blocks replayed, %d header app hashes matched; %d trades in %d windows", kills, s.Height, headers, trades, len(s.Windows))
}

// replayChain reads home's block store and applies blocks 1..height to a
// new in-memory application initialised from home's genesis. It checks each
// app hash against the one the next block's header recorded and returns
// the application and how many headers it compared.
func replayChain(t *testing.T, home string, height int64) (*App, int) {
	t.Helper()
	conf := cfg.DefaultConfig()
	conf.SetRoot(home)
	gen, err := types.GenesisDocFromFile(conf.GenesisFile())
	if err != nil {
		t.Fatal(err)
	}
	db, err := cfg.DefaultDBProvider(&cfg.DBContext{ID: "blockstore", Config: conf})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bs := store.NewBlockStore(db)
	if bs.Height() < height {
		t.Fatalf("the block store ends at %d, the application at %d", bs.Height(), height)
	}
	app, err := NewApp("")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := app.InitChain(ctx, &abci.RequestInitChain{ChainId: gen.ChainID, AppStateBytes: gen.AppState}); err != nil {
		t.Fatal(err)
	}
	headers := 0
	for h := int64(1); h <= height; h++ {
		b := bs.LoadBlock(h)
		if b == nil {
			t.Fatalf("block %d missing from the store", h)
		}
		// The header of block h records the app hash after block h-1.
		if !bytes.Equal(b.Header.AppHash, app.hash) {
			t.Fatalf("block %d: header app hash %x, replay %x", h, b.Header.AppHash, app.hash)
		}
		headers++
		txs := make([][]byte, len(b.Txs))
		for i, tx := range b.Txs {
			txs[i] = tx
		}
		if _, err := app.FinalizeBlock(ctx, &abci.RequestFinalizeBlock{Height: h, Time: b.Time, Txs: txs}); err != nil {
			t.Fatal(err)
		}
		if _, err := app.Commit(ctx, &abci.RequestCommit{}); err != nil {
			t.Fatal(err)
		}
	}
	if next := bs.LoadBlock(height + 1); next != nil {
		if !bytes.Equal(next.Header.AppHash, app.hash) {
			t.Fatalf("block %d: header app hash %x, replay %x", height+1, next.Header.AppHash, app.hash)
		}
		headers++
	}
	return app, headers
}
