package dashboard

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gridveil/gridveil/auth/authnet"
)

// lockedBuffer is a process's output, read while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// party starts `gridveil serve ARGS` as a real process on loopback (a free
// port) and waits for the address file it writes last; stop sends SIGTERM
// (SIGKILL after 10 s) and waits, so that the party has closed its files.
func party(t *testing.T, data, addrFile string, args ...string) (out *lockedBuffer, stop func()) {
	t.Helper()
	out = &lockedBuffer{}
	cmd := exec.Command(gridveil(t), append([]string{"serve", "--data", data, "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	t.Cleanup(stop)
	waitUntil(t, "serve "+strings.Join(args, " ")+" to write its address", func() bool {
		b, err := os.ReadFile(addrFile)
		return err == nil && len(b) > 0
	}, out)
	return out, stop
}

// waitUntil polls cond; the bound only ends a hung test.
func waitUntil(t *testing.T, what string, cond func() bool, out *lockedBuffer) {
	t.Helper()
	for i := 0; !cond(); i++ {
		if i > 3000 {
			t.Fatalf("gave up waiting for %s:\n%s", what, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBrowserAuthRun runs a real CA, LAG and vehicles (gridveil serve and
// gridveil agent bv as processes on loopback): five vehicles authenticate,
// one is revoked, the five come again (four resume with tickets, the
// revoked one is refused). The authentication view's counts equal the
// events of the parties' auth-events.jsonl files, which equal the events
// the parties printed (a separate path from the core's events); the files
// and the page name no vehicle.
func TestBrowserAuthRun(t *testing.T) {
	bin := gridveil(t)
	data := t.TempDir()
	caOut, stopCA := party(t, data, filepath.Join(data, "ca", "addr"), "--role", "ca")
	// Per-identity admission: the operator issues the LAG's and the five
	// vehicles' enrolment credentials (BV-001..BV-005) before they enrol.
	for _, args := range [][]string{{"lag", "lag-1"}, {"vehicle", "--count", "5"}} {
		if out, err := exec.Command(bin, append(append([]string{"ca", "issue"}, args...), "--data", data)...).CombinedOutput(); err != nil {
			t.Fatalf("ca issue %v: %v\n%s", args, err, out)
		}
	}
	lagOut, stopLAG := party(t, data, filepath.Join(data, "lag-lag-1", "addr"), "--role", "lag")
	waitUntil(t, "the LAG's link to the CA", func() bool { return strings.Contains(lagOut.String(), "synced") }, lagOut)
	agent := func(wantOK bool) string {
		out, err := exec.Command(bin, "agent", "bv", "--data", data, "--count", "5").CombinedOutput()
		if (err == nil) != wantOK {
			t.Fatalf("agent bv (want success %v): %v\n%s", wantOK, err, out)
		}
		return string(out)
	}
	if out := agent(true); !strings.Contains(out, "5 of 5 vehicles completed") {
		t.Fatalf("first run:\n%s", out)
	}
	if out, err := exec.Command(bin, "ca", "revoke", "--data", data, "BV-002").CombinedOutput(); err != nil {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	waitUntil(t, "the revocation list at the LAG", func() bool { return strings.Contains(lagOut.String(), "revocation list v1") }, lagOut)
	if out := agent(false); !strings.Contains(out, "4 of 5 vehicles completed") {
		t.Fatalf("after revoking BV-002:\n%s", out)
	}
	stopLAG()
	stopCA()

	// What the parties printed, event by event (serve prints every core
	// event: "[conn] kind: detail or error").
	printed := func(out, kind string) int {
		return len(regexp.MustCompile(`\] `+kind+`: `).FindAllStringIndex(out, -1))
	}
	lagText, caText := lagOut.String(), caOut.String()
	want := struct{ admitted, resumed, refused, revoked int }{
		printed(lagText, "authenticated"), printed(lagText, "resumed"),
		printed(lagText, "rejected") + printed(caText, "(?:rejected|verify|replay)"), printed(caText, "revoked"),
	}
	if want.admitted < 5 || want.resumed < 4 || want.refused < 1 || want.revoked != 1 {
		t.Fatalf("the parties printed %+v: not the run this test made\nLAG:\n%s\nCA:\n%s", want, lagText, caText)
	}

	// The files: every line an anonymous event, counted here with code
	// of the test's own.
	allowed := map[string]bool{"schema": true, "party": true, "kind": true, "reason": true, "size": true, "verify_seconds": true}
	kinds, reasons := map[string]int{}, map[string]int{}
	var sizes []float64
	for _, f := range []string{"ca", "lag-lag-1"} {
		raw, err := os.ReadFile(filepath.Join(data, f, authnet.AuthEventsFile))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte("BV-")) || bytes.Contains(raw, []byte("lag-1")) {
			t.Fatalf("%s/%s names a vehicle or a LAG:\n%s", f, authnet.AuthEventsFile, raw)
		}
		sc := bufio.NewScanner(bytes.NewReader(raw))
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("%s: %v in %q", f, err, sc.Text())
			}
			for k := range m {
				if !allowed[k] {
					t.Fatalf("%s: an event carries %q: %s", f, k, sc.Text())
				}
			}
			kinds[m["kind"].(string)]++
			if r, ok := m["reason"].(string); ok {
				reasons[r]++
			}
			if m["kind"] == authnet.EventBatchVerified {
				sizes = append(sizes, m["size"].(float64))
			}
		}
	}
	if kinds[authnet.EventAdmitted] != want.admitted || kinds[authnet.EventResumed] != want.resumed ||
		kinds[authnet.EventRefused] != want.refused || kinds[authnet.EventRevoked] != want.revoked {
		t.Fatalf("the files hold %v, the parties printed %+v", kinds, want)
	}
	if reasons["revoked"] == 0 || len(sizes) == 0 {
		t.Fatalf("refusals by reason %v, %d batches: the revoked vehicle's refusal or the batches are missing", reasons, len(sizes))
	}

	t.Logf("the parties' events: %+v; refusals %v; batch sizes %v", want, reasons, sizes)
	ctx, problems := browser(t)
	hs := serve(t, data, nil)
	openView(t, ctx, hs.URL, "auth")
	textNumber(t, ctx, "auth-admitted", float64(want.admitted))
	textNumber(t, ctx, "auth-resumed", float64(want.resumed))
	textNumber(t, ctx, "auth-revocations", float64(want.revoked))
	textNumber(t, ctx, "auth-refused-total", float64(want.refused))
	textNumber(t, ctx, "auth-batches", float64(len(sizes)))
	got := eval[map[string]string](t, ctx, `Object.fromEntries([...document.querySelectorAll('#auth-refused tbody tr')].filter(r => r.dataset.reason).map(r => [r.dataset.reason, r.children[1].textContent]))`)
	if len(got) != len(reasons) {
		t.Fatalf("the page's refusals %v, the files' %v", got, reasons)
	}
	for r, n := range reasons {
		if got[r] != strconv.Itoa(n) {
			t.Fatalf("refusals for %q: the page shows %q, the files have %d", r, got[r], n)
		}
	}
	equalFloats(t, "batch sizes", seriesNumbers(t, ctx, "chart-auth-batches", "requests"), sizes)
	page := eval[string](t, ctx, `document.body.innerText`)
	if strings.Contains(page, "BV-") {
		t.Fatal("the page names a vehicle")
	}
	screenshot(t, ctx, "auth-real")
	noProblems(t, problems)
}
