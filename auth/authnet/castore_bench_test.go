package authnet

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gridveil/gridveil/auth"
	"github.com/gridveil/gridveil/auth/wire"
)

// fillCAStore writes n enrolled vehicles (two listed pseudonym serials
// each, spread over 100 groups) into a new CA's database, in the record
// layout of auth/castate.go: the state of a CA that enrolled them, without
// the hours of signatures that enrolling them would take. RestoreCAFrom
// refuses the store if the layout here drifts from the core's.
func fillCAStore(tb testing.TB, dir string, n int) { fillCAStoreWith(tb, dir, n, 2) }

// fillCAStoreWith is fillCAStore with serials pseudonym serials per
// vehicle.
func fillCAStoreWith(tb testing.TB, dir string, n, serialsPer int) {
	tb.Helper()
	cs, _ := OpenStore(dir)
	srv, err := OpenCA(cs, auth.CAConfig{}, nil, nil) // keys and an empty state
	if err != nil {
		tb.Fatal(err)
	}
	srv.Close()
	db, err := bolt.Open(cs.Path(caDBFile), 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType})
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	notAfter := time.Now().Add(24 * time.Hour).Unix()
	ring := map[string]uint32{}
	const per = 50_000
	for lo := 0; lo < n; lo += per {
		err := db.Update(func(tx *bolt.Tx) error {
			bvs, serials := tx.Bucket([]byte(auth.TableVehicles)), tx.Bucket([]byte(auth.TableSerials))
			for i := lo; i < min(n, lo+per); i++ {
				group := fmt.Sprintf("utility-%02d", i%100)
				var keys [64]byte
				_, _ = rand.Read(keys[:])
				v := wire.NewBuilder(nil).U8(1).String(fmt.Sprintf("VIN-%07d", i)).String(group).Fixed(keys[:]).
					U32(ring[group]).U8(0).I64(0).I64(0).Out()
				ring[group]++
				if err := bvs.Put(binary.BigEndian.AppendUint32(nil, uint32(i)), v); err != nil {
					return err
				}
				for range serialsPer {
					var s [16]byte
					_, _ = rand.Read(s[:])
					if err := serials.Put(s[:], wire.NewBuilder(nil).U8(1).U32(uint32(i)).I64(notAfter).U8(0).Out()); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkCAHolding measures a CA that holds GRIDVEIL_BENCH_VEHICLES
// enrolled vehicles (default 10,000): how long it takes to open, the heap
// and database it needs, and what an enrolment of one more vehicle costs
// end to end over loopback, fsync included (ns/op). The new vehicles join
// a group of their own: an enrolment answer carries the vehicle's whole
// signed group list, whose cost grows with the group (10,000 members in
// each of the 100 groups at 10^6), not with the CA's state. The cost of a
// change to the state does not grow with the state: compare
//
//	GRIDVEIL_BENCH_VEHICLES=1000 go test ./auth/authnet -run '^$' -bench CAHolding -benchtime 200x
//	GRIDVEIL_BENCH_VEHICLES=1000000 go test ./auth/authnet -run '^$' -bench CAHolding -benchtime 200x
func BenchmarkCAHolding(b *testing.B) {
	n := 10_000
	if s := os.Getenv("GRIDVEIL_BENCH_VEHICLES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	dir := b.TempDir()
	fillCAStore(b, dir+"/ca", n)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	cs, _ := OpenStore(dir + "/ca")
	srv, err := OpenCA(cs, auth.CAConfig{}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	open := time.Since(start)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	var vehicles int
	_ = srv.Do(func(_ time.Time, ca *auth.CA) (auth.Output, error) {
		vehicles, _, _ = ca.Counts()
		return auth.Output{}, nil
	})
	if vehicles != n {
		b.Fatalf("the CA holds %d vehicles, want %d", vehicles, n)
	}
	st, _ := os.Stat(cs.Path(caDBFile))
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Serve(ctx, ln); close(done) }()
	defer func() { cancel(); <-done }()
	vs, _ := OpenStore(dir + "/bv")
	vehiclesToEnrol := make([]*Vehicle, b.N)
	creds := make([][32]byte, b.N) // issued before timing: the operator's step
	for i := range vehiclesToEnrol {
		if vehiclesToEnrol[i], err = OpenVehicle(vs, fmt.Sprintf("NEW-%d", i), "utility-new", srv.Public()); err != nil {
			b.Fatal(err)
		}
		if creds[i], err = srv.IssueCredential(auth.CredentialVehicle, vehiclesToEnrol[i].BV.RealID); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		if err := vehiclesToEnrol[i].Enrol(context.Background(), ln.Addr().String(), creds[i], 2); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(open.Seconds(), "open-s")
	b.ReportMetric(float64(after.HeapAlloc-min(before.HeapAlloc, after.HeapAlloc))/(1<<20), "heap-MiB")
	b.ReportMetric(float64(st.Size())/(1<<20), "db-MiB")
}

// TestLAGSyncsLargeCA: a CA holding more vehicles than one frame's worth
// of group keys (140,000: 4.5 MB of keys, over the 4 MiB frame limit a
// whole-list sync exceeded) serves a LAG that starts empty: the LAG links,
// over TCP, with every key of every group; restarted, it links again and
// holds the same. GRIDVEIL_BENCH_VEHICLES sets another size (1000000 for
// the 10^6 case).
func TestLAGSyncsLargeCA(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a CA with 140,000 vehicles")
	}
	n := 140_000
	if s := os.Getenv("GRIDVEIL_BENCH_VEHICLES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			t.Fatalf("GRIDVEIL_BENCH_VEHICLES=%q: give a positive count", s)
		}
	}
	dir := t.TempDir()
	fillCAStoreWith(t, dir+"/ca", n, 0) // serials play no part in a sync of keys
	cs, _ := OpenStore(dir + "/ca")
	srv, err := OpenCA(cs, auth.CAConfig{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	done := make(chan struct{})
	go func() { _ = srv.Serve(ctx, ln); close(done) }()
	defer func() { cancel(); <-done }()
	cred, err := srv.IssueCredential(auth.CredentialLAG, "lag-1")
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := OpenStore(dir + "/lag")
	for run := range 2 {
		lctx, lcancel := context.WithCancel(ctx)
		l, err := OpenLAG(lctx, ls, LAGOptions{ID: "lag-1", Group: "utility-00", CAAddr: ln.Addr().String(), CA: srv.Public(), Token: cred}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		lln, _ := net.Listen("tcp", "127.0.0.1:0")
		served := make(chan struct{})
		go func() { _ = l.Serve(lctx, lln); close(served) }()
		select {
		case <-l.Linked():
		case <-ctx.Done():
			t.Fatalf("run %d: the LAG did not link to a CA of %d vehicles", run, n)
		}
		total := 0
		l.Do(func(_ time.Time, c *auth.LAG) auth.Output {
			for _, k := range c.GroupSizes() {
				total += k
			}
			return auth.Output{}
		})
		lcancel()
		<-served
		if total != n {
			t.Fatalf("run %d: the LAG holds %d keys of %d", run, total, n)
		}
	}
}
