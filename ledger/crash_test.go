package ledger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// The crash test's workload: crashAccounts stations each send crashSends
// transfers of 1 to the next station. Whatever the interruptions, the end
// state is exact: every nonce at crashSends, every balance back where it
// started (each station sends as many as it receives).
const (
	crashAccounts = 8
	crashSends    = 60
	crashBalance  = 1_000_000
	crashChildEnv = "GRIDVEIL_LEDGER_CRASH_CHILD"
)

func crashGenesis() (*Genesis, []*party) {
	grid := newParty(1)
	g := &Genesis{Params: Params{Chain: "crash", MinuteMillis: 60000, Rule: "uniform"}, Accounts: map[string]Account{grid.key: {Role: RoleGrid}}}
	var ps []*party
	for i := 0; i < crashAccounts; i++ {
		p := newParty(byte(40 + i))
		ps = append(ps, p)
		g.Accounts[p.key] = Account{Role: RoleStation, Balance: crashBalance}
	}
	return g, ps
}

// TestMain lets the crash test run this binary as the node process.
func TestMain(m *testing.M) {
	if home := os.Getenv(crashChildEnv); home != "" {
		os.Exit(crashChild(home))
	}
	if home := os.Getenv(nodeChildEnv); home != "" {
		os.Exit(nodeChild(home))
	}
	os.Exit(m.Run())
}

// crashChild starts (or restarts) the node on home and sends whatever the
// workload still lacks, resuming from the committed nonces. It exits 0
// once every transfer is committed.
func crashChild(home string) int {
	g, ps := crashGenesis()
	n, err := StartNode(NodeConfig{Home: home, Genesis: g, Block: 50 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx := context.Background()
	for {
		s := n.App.State()
		if s == nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		done := true
		for i, p := range ps {
			next := s.Accounts[p.key].Nonce
			if next >= crashSends {
				continue
			}
			done = false
			// Send this account's next transfer; resending one that is
			// already in the mempool or a block is rejected by its nonce.
			b := Body{Chain: "crash", Nonce: next, Type: "transfer", To: ps[(i+1)%len(ps)].key, Amount: 1}
			tx, _ := Sign(b, p.priv)
			_, _ = n.Client.BroadcastTxSync(ctx, tx)
		}
		if done {
			_ = n.Stop()
			return 0
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// TestCrashRecovery kills the node process with SIGKILL at random moments
// and restarts it until the workload is committed, then checks that no
// transfer was lost or applied twice and that the persisted state matches
// its hash.
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
		wait := time.Duration(300+rng.IntN(1200)) * time.Millisecond
		if kills >= 4 {
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
	app, err := NewApp(home + "/app")
	if err != nil {
		t.Fatal(err)
	}
	s := app.State()
	_, ps := crashGenesis()
	for i, p := range ps {
		acc := s.Accounts[p.key]
		if acc.Nonce != crashSends || acc.Balance != crashBalance {
			t.Errorf("station %d: nonce %d, balance %d; want %d and %d (a transfer lost or doubled)", i, acc.Nonce, acc.Balance, crashSends, crashBalance)
		}
	}
	if string(s.Hash()) != string(app.hash) {
		t.Error("the persisted hash does not match the persisted state")
	}
	t.Logf("%d SIGKILLs, final height %d", kills, s.Height)
}
