package authnet

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gridveil/gridveil/auth"
)

// TestManyVehiclesAtOnce: 48 vehicles connect to the LAG server at once;
// each connection's frames are handled in steps on its own goroutine, and
// a batch window long enough to gather them all has their requests
// verified in parts on several goroutines (48 requests make three parts
// of 16, one per core). Every vehicle is admitted, each once. Under -race
// this checks the server's concurrency.
func TestManyVehiclesAtOnce(t *testing.T) {
	const count = 48
	dir := t.TempDir()
	w := startWorldWith(t, dir, func(o *LAGOptions) { o.BatchWindow = 500 * time.Millisecond })
	defer w.stop()
	token, err := ReadToken(dir + "/ca/enrol.token")
	if err != nil {
		t.Fatal(err)
	}
	vs, _ := OpenStore(dir + "/bv")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, count)
	for i := range count {
		wg.Go(func() {
			v, err := OpenVehicle(vs, fmt.Sprintf("BV-%02d", i), "utility-a", w.ca.Public())
			if err == nil {
				err = v.Enrol(ctx, w.caAddr, token, 1)
			}
			if err != nil {
				errs[i] = err
				return
			}
			s, err := v.Connect(ctx, w.lagAddr, auth.SessionOptions{Schemes: []auth.Scheme{auth.SchemePseudonym}})
			if err != nil {
				errs[i] = err
				return
			}
			errs[i] = s.Close()
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("vehicle %d: %v", i, err)
		}
	}
	// A vehicle is charging once it sent its grant; the LAG logs it once it
	// read it.
	admitted := func() int {
		w.mu.Lock()
		defer w.mu.Unlock()
		n := 0
		for _, e := range w.events {
			if strings.HasPrefix(e, "lag ") && strings.Contains(e, " authenticated: ") {
				n++
			}
		}
		return n
	}
	for admitted() < count && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	if n := admitted(); n != count {
		t.Fatalf("%d authenticated events for %d vehicles", n, count)
	}
}
