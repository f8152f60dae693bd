package authnet

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gridveil/gridveil/auth"
)

// Environment of a LAG child process (TestMain): its data directory (the
// CA's is its sibling "ca", whose addr, public.key and enrol.token it
// reads), and optionally a file for a CPU profile of its whole life.
const (
	lagChildEnv    = "GRIDVEIL_TEST_LAG_CHILD"
	lagProfileEnv  = "GRIDVEIL_TEST_LAG_CPUPROFILE"
	e2eConcurrency = 32 // vehicles connecting at once (below MaxPerSource: they share 127.0.0.1)
)

// lagChild serves a LAG from dir, linked to the CA whose data directory is
// dir/../ca, writes its address to dir/addr and serves until killed.
func lagChild(dir string) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, err); return 2 }
	caDir := filepath.Join(filepath.Dir(dir), "ca")
	pub, err := ReadCAPublic(filepath.Join(caDir, "public.key"))
	if err != nil {
		return fail(err)
	}
	token, err := ReadToken(filepath.Join(caDir, "enrol.token"))
	if err != nil {
		return fail(err)
	}
	caAddr, err := os.ReadFile(filepath.Join(caDir, "addr"))
	if err != nil {
		return fail(err)
	}
	if f := os.Getenv(lagProfileEnv); f != "" {
		out, err := os.Create(f)
		if err != nil {
			return fail(err)
		}
		if err := pprof.StartCPUProfile(out); err != nil {
			return fail(err)
		}
		go func() { // the parent ends the profile by closing stdin
			_, _ = os.Stdin.Read(make([]byte, 1))
			pprof.StopCPUProfile()
			out.Close()
			os.Exit(0)
		}()
	}
	store, err := OpenStore(dir)
	if err != nil {
		return fail(err)
	}
	ctx := context.Background()
	srv, err := OpenLAG(ctx, store, LAGOptions{ID: "lag-1", Group: "utility-a", CAAddr: string(caAddr), CA: pub, Token: token}, nil, nil)
	if err != nil {
		return fail(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	go func() {
		<-srv.Linked()
		_ = store.Write("addr", []byte(ln.Addr().String()), 0o644)
	}()
	if err := srv.Serve(ctx, ln); err != nil {
		return fail(err)
	}
	return 0
}

// childProc starts this test binary as a child with env and waits for
// dir/addr.
func childProc(tb testing.TB, dir string, env ...string) (*exec.Cmd, string) {
	tb.Helper()
	os.Remove(filepath.Join(dir, "addr"))
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	tb.Cleanup(func() {
		stdin.Close() // a profiling LAG writes its profile and exits
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
		_ = cmd.Process.Kill()
		<-exited
	})
	for range 1500 {
		if b, err := os.ReadFile(filepath.Join(dir, "addr")); err == nil && len(b) > 0 {
			return cmd, string(b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatal("the child process did not write its address")
	return nil, ""
}

// cpuOf is the CPU time (user + system) a process has used, from
// /proc/<pid>/stat in clock ticks of 10 ms.
func cpuOf(tb testing.TB, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Skipf("no /proc: %v", err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return time.Duration(u+s) * 10 * time.Millisecond
}

// BenchmarkEndToEnd admits vehicles over real sockets with the CA, the
// LAG and the vehicles in three processes (this binary re-executed as the
// CA and the LAG): one op is one vehicle's full authentication by
// pseudonym, from its dial to its grant, e2eConcurrency at a time. It
// reports admissions per second and the LAG's and the CA's CPU per
// admission, to set beside BenchmarkLAGAdmitParallel (the LAG core alone).
// With GRIDVEIL_TEST_LAG_CPUPROFILE=file the LAG process writes a CPU
// profile.
func BenchmarkEndToEnd(b *testing.B) {
	dir := b.TempDir()
	caDir, lagDir := filepath.Join(dir, "ca"), filepath.Join(dir, "lag")
	os.MkdirAll(caDir, 0o700)
	os.MkdirAll(lagDir, 0o700)
	caCmd, caAddr := childProc(b, caDir, caChildEnv+"="+caDir, caChildSharedEnv+"=1")
	env := []string{lagChildEnv + "=" + lagDir}
	lagCmd, lagAddr := childProc(b, lagDir, env...)
	pub, _ := ReadCAPublic(filepath.Join(caDir, "public.key"))
	token, _ := ReadToken(filepath.Join(caDir, "enrol.token"))
	vs, _ := OpenStore(filepath.Join(dir, "bv"))
	ctx := context.Background()
	vehicles := make([]*Vehicle, b.N)
	run := func(f func(i int) error) {
		var wg sync.WaitGroup
		sem := make(chan struct{}, e2eConcurrency)
		errs := make([]error, b.N)
		for i := range b.N {
			sem <- struct{}{}
			wg.Go(func() { defer func() { <-sem }(); errs[i] = f(i) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				b.Fatalf("vehicle %d: %v", i, err)
			}
		}
	}
	run(func(i int) error {
		v, err := OpenVehicle(vs, fmt.Sprintf("BV-%06d", i), "utility-a", pub)
		if err == nil {
			err = v.Enrol(ctx, caAddr, token, 1)
		}
		vehicles[i] = v
		return err
	})
	lag0, ca0 := cpuOf(b, lagCmd.Process.Pid), cpuOf(b, caCmd.Process.Pid)
	b.ResetTimer()
	start := time.Now()
	run(func(i int) error {
		c, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		s, err := vehicles[i].Connect(c, lagAddr, auth.SessionOptions{Role: auth.RoleLoad, Schemes: []auth.Scheme{auth.SchemePseudonym}})
		if err != nil {
			return err
		}
		return s.Close()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	lagCPU, caCPU := cpuOf(b, lagCmd.Process.Pid)-lag0, cpuOf(b, caCmd.Process.Pid)-ca0
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "vehicles/s")
	b.ReportMetric(lagCPU.Seconds()*1e3/float64(b.N), "LAG-ms-CPU/admission")
	b.ReportMetric(caCPU.Seconds()*1e3/float64(b.N), "CA-ms-CPU/admission")
}
