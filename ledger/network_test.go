package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
)

const nodeChildEnv = "GRIDVEIL_LEDGER_NODE_HOME"

// nodeChild runs one validator of a network in this process until it is
// killed: the child side of TestFourValidators.
func nodeChild(home string) int {
	c := NodeConfig{Home: home, Block: 100 * time.Millisecond, P2P: os.Getenv("GRIDVEIL_P2P"), RPC: os.Getenv("GRIDVEIL_RPC"), Peers: os.Getenv("GRIDVEIL_PEERS")}
	if _, err := StartNode(c); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	select {}
}

// freePorts finds n free loopback ports.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// TestFourValidators: a consortium of four equal validators, each its own
// process on loopback, commits transactions; with one of them killed the
// other three (more than two thirds of the voting power) keep committing
// and agree on the state; a forged and a replayed transaction are refused.
func TestFourValidators(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four CometBFT node processes")
	}
	g, _, ps := crashGenesis()
	g.Params.Chain = "consortium"
	ports := freePorts(t, 8)
	configs, err := InitNetwork(t.TempDir(), 4, g, nil, ports[:4], 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	var procs []*exec.Cmd
	var clients []*rpchttp.HTTP
	for i, c := range configs {
		rpc := fmt.Sprintf("tcp://127.0.0.1:%d", ports[4+i])
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), nodeChildEnv+"="+c.Home, "GRIDVEIL_P2P="+c.P2P, "GRIDVEIL_RPC="+rpc, "GRIDVEIL_PEERS="+c.Peers)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, cmd)
		cl, err := rpchttp.New(rpc, "/websocket")
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, cl)
	}
	defer func() {
		for _, p := range procs {
			if p != nil {
				_ = p.Process.Signal(syscall.SIGKILL)
				_ = p.Wait()
			}
		}
	}()
	ctx := context.Background()
	state := func(i int) *State {
		q, err := clients[i].ABCIQuery(ctx, "/state", nil)
		if err != nil || q.Response.Code != 0 {
			return nil
		}
		var s State
		if json.Unmarshal(q.Response.Value, &s) != nil {
			return nil
		}
		return &s
	}
	waitHeight := func(i int, h int64) {
		t.Helper()
		deadline := time.Now().Add(40 * time.Second)
		for time.Now().Before(deadline) {
			if s := state(i); s != nil && s.Height >= h {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("node %d did not reach height %d", i, h)
	}
	send := func(i int, p, to *party) {
		t.Helper()
		tx, _ := Sign(Body{Chain: "consortium", Nonce: p.nonce, Type: "transfer", To: to.key, Amount: 7}, p.priv)
		res, err := clients[i].BroadcastTxCommit(ctx, tx)
		if err != nil {
			t.Fatal(err)
		}
		if res.CheckTx.Code != 0 || res.TxResult.Code != 0 {
			t.Fatalf("transfer rejected: %s%s", res.CheckTx.Log, res.TxResult.Log)
		}
		p.nonce++
	}
	waitHeight(0, 2)
	send(0, ps[0], ps[1])

	// Kill one validator; the other three must keep committing.
	_ = procs[3].Process.Signal(syscall.SIGKILL)
	_ = procs[3].Wait()
	procs[3] = nil
	h := state(1).Height
	send(1, ps[1], ps[2])
	waitHeight(2, h+3)
	waitHeight(0, h+3)
	for _, i := range []int{0, 1, 2} {
		s := state(i)
		if s.Accounts[ps[1].key].Nonce != 1 || s.Accounts[ps[2].key].Balance != crashBalance+7 {
			t.Fatalf("node %d does not hold both transfers", i)
		}
	}

	// A forged and a replayed transaction are refused, by the mempool's
	// cache of seen transactions (an exact replay) or by CheckTx.
	tx, _ := Sign(Body{Chain: "consortium", Nonce: ps[2].nonce, Type: "transfer", To: ps[0].key, Amount: 5}, ps[2].priv)
	forged := []byte(strings.Replace(string(tx), `"sig":"`, `"sig":"A`, 1))
	replay, _ := Sign(Body{Chain: "consortium", Nonce: 0, Type: "transfer", To: ps[1].key, Amount: 7}, ps[0].priv)
	for name, bad := range map[string][]byte{"forged": forged, "replayed": replay} {
		res, err := clients[0].BroadcastTxSync(ctx, bad)
		if err == nil && res.Code == 0 {
			t.Errorf("%s transaction accepted", name)
		}
	}
}
