package authnet

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gridveil/gridveil/auth"
)

func TestStoreAtomic(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, data := range [][]byte{[]byte("one"), []byte("two, longer")} {
		if err := s.Write("f", data, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := s.Read("f")
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%q %v", got, err)
		}
	}
	st, _ := os.Stat(s.Path("f"))
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	entries, _ := os.ReadDir(s.Dir())
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
	if _, err := s.Read("missing"); !isNotExist(err) {
		t.Fatal(err)
	}
	if err := s.Write("a/b", nil, 0o600); err == nil {
		t.Fatal("path separator accepted")
	}
}

// world is a CA and a LAG served on loopback from data directories.
type world struct {
	dir     string
	caAddr  string
	lagAddr string
	ca      *CAServer
	lag     *LAGServer
	cancel  context.CancelFunc
	done    sync.WaitGroup
	mu      sync.Mutex
	events  []string
}

func startWorld(t *testing.T, dir string) *world {
	t.Helper()
	return startWorldWith(t, dir, nil)
}

// startWorldWith starts a world whose LAG options opt may change.
func startWorldWith(t *testing.T, dir string, opt func(*LAGOptions)) *world {
	t.Helper()
	w := &world{dir: dir}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	record := func(who string) EventFunc {
		return func(e auth.Event) {
			w.mu.Lock()
			w.events = append(w.events, who+" "+e.String())
			w.mu.Unlock()
		}
	}
	cs, _ := OpenStore(dir + "/ca")
	var err error
	w.ca, err = OpenCA(cs, auth.CAConfig{AutoDischarge: true, AggregateMin: 2, SharedToken: true}, nil, record("ca"))
	if err != nil {
		t.Fatal(err)
	}
	caLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.caAddr = caLn.Addr().String()
	w.done.Add(1)
	go func() { defer w.done.Done(); _ = w.ca.Serve(ctx, caLn) }()
	token, err := ReadToken(cs.Path("enrol.token"))
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := OpenStore(dir + "/lag")
	lo := LAGOptions{ID: "lag-1", Group: "utility-a", CAAddr: w.caAddr, CA: w.ca.Public(), Token: token,
		ConfirmEvery: 50 * time.Millisecond}
	if opt != nil {
		opt(&lo)
	}
	w.lag, err = OpenLAG(ctx, ls, lo, nil, record("lag"))
	if err != nil {
		t.Fatal(err)
	}
	lagLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.lagAddr = lagLn.Addr().String()
	w.done.Add(1)
	go func() { defer w.done.Done(); _ = w.lag.Serve(ctx, lagLn) }()
	select {
	case <-w.lag.Linked():
	case <-time.After(10 * time.Second):
		t.Fatal("LAG did not link")
	}
	return w
}

func (w *world) stop() {
	w.cancel()
	w.done.Wait()
}

// TestOverTCP runs vehicles through the full cycle over real sockets,
// concurrently, then restarts both servers from their data directories and
// runs them again: the LAG keeps its certificate, home vehicles resume.
func TestOverTCP(t *testing.T) {
	dir := t.TempDir()
	w := startWorld(t, dir)
	token, _ := ReadToken(dir + "/ca/enrol.token")
	ctx := context.Background()
	vs, _ := OpenStore(dir + "/bv")
	run := func(resume bool) []*CycleReport {
		var wg sync.WaitGroup
		reps := make([]*CycleReport, 3)
		errs := make([]error, 3)
		for i := range reps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, err := OpenVehicle(vs, fmt.Sprintf("BV-%d", i), "utility-a", w.ca.Public())
				if err == nil && v.BV.Pseudonyms() < 2 {
					err = v.Enrol(ctx, w.caAddr, token, 4)
				}
				if err != nil {
					errs[i] = err
					return
				}
				reps[i], errs[i] = v.RunCycle(ctx, w.lagAddr, CycleOptions{
					Session:  auth.SessionOptions{Role: auth.RoleStorage, WillDischarge: true, Resume: resume},
					EnergyWh: 20000,
				})
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				w.mu.Lock()
				t.Fatalf("vehicle %d: %v\n%s", i, err, strings.Join(w.events, "\n"))
			}
		}
		return reps
	}
	for _, r := range run(false) {
		if fmt.Sprint(r.States) != "[charging fully-charged discharging charging]" || !r.View.Home {
			t.Fatalf("%s: %v %+v", r.RealID, r.States, r.View)
		}
	}
	w.mu.Lock()
	for _, e := range w.events {
		if strings.HasPrefix(e, "lag ") && strings.Contains(e, "BV-") {
			t.Fatalf("the LAG learned an identity: %s", e)
		}
	}
	w.mu.Unlock()
	cert, _ := os.ReadFile(dir + "/lag/cert")
	w.stop()

	w = startWorld(t, dir)
	defer w.stop()
	if again, _ := os.ReadFile(dir + "/lag/cert"); !bytes.Equal(cert, again) {
		t.Fatal("the LAG enrolled again after a restart")
	}
	// Neither the CA nor the LAG keeps sessions across a restart, so the
	// tickets from before are refused and the vehicles authenticate in
	// full; the run after that resumes.
	for _, resumed := range []bool{false, true} {
		for _, r := range run(true) {
			if r.View.Resumed != resumed || fmt.Sprint(r.States) != "[charging fully-charged discharging charging]" {
				t.Fatalf("%s: resumed %v, %v", r.RealID, r.View.Resumed, r.States)
			}
		}
	}
}
