package authnet

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gridveil/gridveil/auth"
)

// Environment of a CA child process (TestMain): its data directory, and
// the commit at which it SIGKILLs itself (N: right after the Nth sync; -N:
// right before the Nth write; 0: never).
const (
	caChildEnv       = "GRIDVEIL_TEST_CA_CHILD"
	caChildKillEnv   = "GRIDVEIL_TEST_CA_KILL_AFTER_SYNC"
	caChildSharedEnv = "GRIDVEIL_TEST_CA_SHARED"
	caChildCapEnv    = "GRIDVEIL_TEST_CA_MAX_PSEUDONYMS"
)

// TestMain lets the crash test run this binary as a CA process.
func TestMain(m *testing.M) {
	if dir := os.Getenv(caChildEnv); dir != "" {
		os.Exit(caChild(dir))
	}
	if dir := os.Getenv(lagChildEnv); dir != "" {
		os.Exit(lagChild(dir))
	}
	os.Exit(m.Run())
}

// caChild serves a CA on a free loopback port from dir, writes the port
// to dir/addr, and serves until killed (or, with the kill variable set,
// kills itself at that commit: right after it reached the disk, before any
// of its answers is sent, or right before it is written).
func caChild(dir string) int {
	store, err := OpenStore(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	// GRIDVEIL_TEST_CA_SHARED=1 keeps the shared token (a migration), for
	// the end-to-end benchmark's vehicles.
	maxPseudo, _ := strconv.Atoi(os.Getenv(caChildCapEnv)) // 0: the default
	srv, err := OpenCA(store, auth.CAConfig{AggregateMin: 2, SharedToken: os.Getenv(caChildSharedEnv) == "1", MaxPseudonymsPerPeriod: maxPseudo}, nil, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	// "N" kills right after the Nth sync, "-N" right before the Nth write.
	if n, _ := strconv.Atoi(os.Getenv(caChildKillEnv)); n != 0 {
		srv.CommitHook = func(k int, synced bool) {
			if (n > 0 && synced && k == n) || (n < 0 && !synced && k == -n) {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the signal is on its way
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := store.Write("addr", []byte(ln.Addr().String()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := srv.Serve(context.Background(), ln); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// caProc is a CA child process.
type caProc struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
	err  error
}

func startCAProc(t *testing.T, dir string, killAfter int, env ...string) *caProc {
	t.Helper()
	os.Remove(filepath.Join(dir, "addr"))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), caChildEnv+"="+dir, caChildKillEnv+"="+strconv.Itoa(killAfter)), env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &caProc{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	for range 1000 {
		if b, err := os.ReadFile(filepath.Join(dir, "addr")); err == nil && len(b) > 0 {
			p.addr = string(b)
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("the CA process exited before it listened: %v", p.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	_ = cmd.Process.Kill()
	t.Fatal("the CA process did not write its address")
	return nil
}

// kill ends the process with SIGKILL (if it is still running) and waits.
func (p *caProc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// killedItself reports whether the process died of SIGKILL.
func (p *caProc) killedItself() bool {
	var ee *exec.ExitError
	if !errors.As(p.err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// TestCAKilledKeepsWhatItConfirmed runs vehicle enrolments, LAG enrolments
// (each with an enrolment credential the CA issued through the admin key,
// as gridveil ca issue does) and revocations (as gridveil ca revoke does)
// against a CA process, four clients at a time, while the CA kills itself
// with SIGKILL right before its Nth write or right after its Nth sync to
// the disk (N and which drawn from a fixed seed), and is restarted each
// time. Everything a client was told had
// succeeded must be in the CA's state afterwards, and every LAG that got a
// certificate links to the restarted CA with it.
func TestCAKilledKeepsWhatItConfirmed(t *testing.T) {
	if testing.Short() {
		t.Skip("starts CA processes")
	}
	dir := t.TempDir()
	caDir := filepath.Join(dir, "ca")
	rng := rand.New(rand.NewPCG(13, 13))
	proc := startCAProc(t, caDir, 1+rng.IntN(4))
	defer func() { proc.kill() }()
	pub, err := ReadCAPublic(filepath.Join(caDir, "public.key"))
	if err != nil {
		t.Fatal(err)
	}
	adminKey, err := ReadAdminKey(filepath.Join(caDir, AdminKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	vs, _ := OpenStore(filepath.Join(dir, "bv"))

	var (
		mu         sync.Mutex
		enrolled   = map[string]bool{} // confirmed vehicle enrolments
		lags       = map[string]bool{} // confirmed LAG certificates
		revoked    = map[string]bool{} // confirmed revocations
		confirmedN int
		lost       []string                // found lost while the workload ran
		creds      = map[string][32]byte{} // confirmed credentials, by vehicle or LAG
	)
	// credential returns the enrolment credential of a vehicle or LAG,
	// having the CA issue it (as gridveil ca issue does) the first time: a
	// retried op presents the one it was confirmed, which must still work.
	credential := func(ctx context.Context, addr string, kind auth.CredentialKind, name string) ([32]byte, error) {
		mu.Lock()
		c, ok := creds[name]
		mu.Unlock()
		if ok {
			return c, nil
		}
		a, first, err := auth.NewAdminIssue(pub, adminKey, kind, name)
		if err != nil {
			return c, err
		}
		res, err := RunAdmin(ctx, addr, a, first)
		if err != nil {
			return c, err
		}
		b, err := hex.DecodeString(res)
		if err != nil || len(b) != 32 {
			return c, fmt.Errorf("credential %q: %v", res, err)
		}
		mu.Lock()
		creds[name] = [32]byte(b)
		mu.Unlock()
		return [32]byte(b), nil
	}
	// admitted checks an enrolment error for a confirmed credential the
	// restarted CA no longer knows.
	admitted := func(name string, err error) error {
		if errors.Is(err, auth.ErrNoAdmission) || errors.Is(err, auth.ErrCredentialRevoked) {
			mu.Lock()
			lost = append(lost, fmt.Sprintf("credential of %s (%v)", name, err))
			mu.Unlock()
			return nil
		}
		return err
	}
	// op i: every 5th a LAG, every 4th a revocation of an earlier
	// confirmed vehicle, otherwise a vehicle.
	op := func(ctx context.Context, addr string, i int) error {
		switch {
		case i%5 == 0:
			id := fmt.Sprintf("lag-%d", i)
			ls, _ := OpenStore(filepath.Join(dir, id))
			cred, err := credential(ctx, addr, auth.CredentialLAG, id)
			if err != nil {
				return err
			}
			l, err := OpenLAG(ctx, ls, LAGOptions{ID: id, Group: "utility-a", CAAddr: addr, CA: pub, Token: cred}, nil, nil)
			if err != nil {
				return admitted(id, err)
			}
			_ = l
			mu.Lock()
			lags[id] = true
			mu.Unlock()
		case i%4 == 0:
			mu.Lock()
			var victim string
			for id := range enrolled {
				if !revoked[id] && (victim == "" || id < victim) {
					victim = id
				}
			}
			mu.Unlock()
			if victim == "" {
				return nil
			}
			a, first, err := auth.NewAdminRevoke(pub, adminKey, victim)
			if err != nil {
				return err
			}
			if _, err := RunAdmin(ctx, addr, a, first); err != nil {
				if errors.Is(err, auth.ErrUnknown) { // a confirmed enrolment is gone
					mu.Lock()
					lost = append(lost, fmt.Sprintf("enrolment of %s (the restarted CA does not know it: %v)", victim, err))
					revoked[victim] = false
					delete(enrolled, victim)
					mu.Unlock()
					return nil
				}
				return err
			}
			mu.Lock()
			revoked[victim] = true
			mu.Unlock()
		default:
			id := fmt.Sprintf("BV-%03d", i)
			v, err := OpenVehicle(vs, id, "utility-a", pub)
			if err != nil {
				return err
			}
			cred, err := credential(ctx, addr, auth.CredentialVehicle, id)
			if err != nil {
				return err
			}
			if err := v.Enrol(ctx, addr, cred, 2); err != nil {
				return admitted(id, err)
			}
			mu.Lock()
			enrolled[id] = true
			mu.Unlock()
		}
		mu.Lock()
		confirmedN++
		mu.Unlock()
		return nil
	}

	const ops, clients = 120, 4
	todo := make([]int, ops) // ops not yet confirmed, in order
	for i := range todo {
		todo[i] = i
	}
	kills := 0
	for len(todo) > 0 {
		// One round: the clients take ops in turn until one fails (the CA
		// died) or all are done.
		var wg sync.WaitGroup
		var failed sync.Map
		var tmu sync.Mutex
		take := func() int {
			tmu.Lock()
			defer tmu.Unlock()
			if len(todo) == 0 {
				return -1
			}
			i := todo[0]
			todo = todo[1:]
			return i
		}
		for range clients {
			wg.Go(func() {
				for {
					i := take()
					if i < 0 {
						return
					}
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					err := op(ctx, proc.addr, i)
					cancel()
					if err != nil {
						failed.Store(i, err)
						return
					}
				}
			})
		}
		wg.Wait()
		var retry []int
		failed.Range(func(k, _ any) bool { retry = append(retry, k.(int)); return true })
		if len(retry) == 0 {
			break
		}
		select {
		case <-proc.done:
		case <-time.After(30 * time.Second):
			var why []string
			failed.Range(func(k, v any) bool { why = append(why, fmt.Sprintf("op %d: %v", k, v)); return true })
			t.Fatalf("ops failed but the CA is still running: %s", strings.Join(why, "; "))
		}
		if !proc.killedItself() {
			t.Fatalf("the CA process ended without the SIGKILL: %v", proc.err)
		}
		kills++
		// The failed ops were not confirmed: run them again first.
		slices.Sort(retry)
		todo = append(retry, todo...)
		killAfter := 1 + rng.IntN(6)
		if rng.IntN(2) == 0 {
			killAfter = -killAfter
		}
		if kills >= 8 {
			killAfter = 0 // enough crashes: let the rest finish
		}
		proc = startCAProc(t, caDir, killAfter)
	}
	if len(lost) > 0 {
		t.Fatalf("confirmed but lost: %s", strings.Join(lost, "; "))
	}
	if kills < 3 || len(enrolled) == 0 || len(lags) == 0 || len(revoked) == 0 {
		t.Fatalf("the workload did not exercise the crashes: %d kills, %d vehicles, %d LAGs, %d revocations",
			kills, len(enrolled), len(lags), len(revoked))
	}

	// Every LAG that got its certificate links to the CA with it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for id := range lags {
		ls, _ := OpenStore(filepath.Join(dir, id))
		before, _ := ls.Read(lagCertFile)
		l, err := OpenLAG(ctx, ls, LAGOptions{ID: id, Group: "utility-a", CAAddr: proc.addr, CA: pub}, nil, nil)
		if err != nil {
			t.Fatalf("LAG %s after the crashes: %v", id, err)
		}
		if after, _ := ls.Read(lagCertFile); string(after) != string(before) {
			t.Fatalf("LAG %s had to enrol again", id)
		}
		lctx, lcancel := context.WithCancel(ctx)
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		served := make(chan struct{})
		go func() { _ = l.Serve(lctx, ln); close(served) }()
		select {
		case <-l.Linked():
		case <-ctx.Done():
			t.Fatalf("LAG %s, certified before a crash, does not link to the restarted CA", id)
		}
		lcancel()
		<-served
	}

	// The CA's state holds every confirmed enrolment and revocation.
	proc.kill()
	cs, _ := OpenStore(caDir)
	srv, err := OpenCA(cs, auth.CAConfig{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var missing []string
	_ = srv.Do(func(_ time.Time, ca *auth.CA) (auth.Output, error) {
		for id := range enrolled {
			v, ok := ca.Vehicle(id)
			switch {
			case !ok:
				missing = append(missing, "enrolment of "+id)
			case v.Serials < 2:
				missing = append(missing, fmt.Sprintf("%s's pseudonyms (%d of 2)", id, v.Serials))
			case revoked[id] && !v.Revoked:
				missing = append(missing, "revocation of "+id)
			}
		}
		for id := range lags {
			if known, _ := ca.LAGKnown(id); !known {
				missing = append(missing, "certificate of "+id)
			}
		}
		for id := range creds { // every confirmed credential: spent by its confirmed enrolment, or still there to spend
			kind := auth.CredentialVehicle
			if strings.HasPrefix(id, "lag-") {
				kind = auth.CredentialLAG
			}
			c, ok := ca.Credential(kind, id)
			switch {
			case !ok || c.State == "revoked":
				missing = append(missing, "the credential of "+id)
			case (enrolled[id] || lags[id]) && c.State != "used":
				missing = append(missing, fmt.Sprintf("the use of %s's credential (%s)", id, c.State))
			}
		}
		return auth.Output{}, nil
	})
	if len(missing) > 0 {
		t.Fatalf("confirmed but lost after %d SIGKILLs: %s", kills, strings.Join(missing, "; "))
	}
	t.Logf("%d SIGKILLs; %d confirmed operations: %d credentials, %d vehicles, %d LAGs, %d revocations, none lost", kills, confirmedN, len(creds), len(enrolled), len(lags), len(revoked))
}
