package authnet

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gridveil/gridveil/auth"
)

// TestAnonymousEvents: each counted core event maps to its anonymous
// kind and reason class, the rest are not counted, and no text of the core
// event (which names vehicles, LAGs and sessions) reaches the record.
func TestAnonymousEvents(t *testing.T) {
	secret := `vehicle "BV-007" session 1a2b3c4d at LAG "lag-9"`
	cases := []struct {
		party string
		e     auth.Event
		kind  string
		why   string
	}{
		{"lag", auth.Event{Conn: 7, Kind: "authenticated", Detail: secret}, EventAdmitted, ""},
		{"lag", auth.Event{Conn: 7, Kind: "resumed", Detail: secret}, EventResumed, ""},
		{"lag", auth.Event{Kind: "rejected", Err: fmt.Errorf("%w: %s", auth.ErrRevoked, secret)}, EventRefused, "revoked"},
		{"lag", auth.Event{Kind: "rejected", Err: fmt.Errorf("%w: %s", auth.ErrStaleRing, secret)}, EventRefused, "outdated group list"},
		{"ca", auth.Event{Kind: "replay", Err: fmt.Errorf("%w: %s", auth.ErrReplay, secret)}, EventRefused, "replayed"},
		{"ca", auth.Event{Kind: "verify", Err: fmt.Errorf("odd: %s", secret)}, EventRefused, "other"},
		{"ca", auth.Event{Kind: "revoked", Detail: secret}, EventRevoked, ""},
		{"lag", auth.Event{Kind: batchKind, Detail: fmt.Sprintf("%d %d", 12, (3 * time.Millisecond).Nanoseconds())}, EventBatchVerified, ""},
		{"lag", auth.Event{Kind: "answer-dropped", Err: fmt.Errorf("link down: %s", secret)}, "", ""},
		{"ca", auth.Event{Kind: "permit", Detail: secret}, "", ""},
		{"lag", auth.Event{Kind: "revoked", Detail: secret}, "", ""}, // only the CA revokes
		{"lag", auth.Event{Kind: batchKind, Detail: "garbled"}, "", ""},
	}
	for i, c := range cases {
		ev, ok := Anonymous(c.party, c.e)
		if ok != (c.kind != "") || (ok && (ev.Kind != c.kind || ev.Reason != c.why || ev.Party != c.party || ev.Schema != AuthEventSchema)) {
			t.Errorf("case %d (%s %s): got %+v, %v; want kind %q reason %q", i, c.party, c.e.Kind, ev, ok, c.kind, c.why)
			continue
		}
		b, _ := json.Marshal(ev)
		if strings.Contains(string(b), "BV-007") || strings.Contains(string(b), "1a2b") || strings.Contains(string(b), "lag-9") {
			t.Errorf("case %d: %s carries the core event's text", i, b)
		}
		if ev.Kind == EventBatchVerified && (ev.Size != 12 || ev.VerifySeconds != 0.003) {
			t.Errorf("batch: %+v", ev)
		}
	}
}

// TestAuthEventLogRoundTrip: what a log records is read back in order; a
// torn last line is skipped and counted; a foreign line is refused by
// number.
func TestAuthEventLogRoundTrip(t *testing.T) {
	store, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l, err := OpenAuthEventLog(store)
	if err != nil {
		t.Fatal(err)
	}
	var passed []string
	f := l.Wrap("lag", func(e auth.Event) { passed = append(passed, e.Kind) })
	f(auth.Event{Kind: "authenticated"})
	f(auth.Event{Kind: batchKind, Detail: "3 1000"})
	f(auth.Event{Kind: "rejected", Err: auth.ErrExpired})
	f(auth.Event{Kind: "bye"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(passed, ",") != "authenticated,rejected,bye" {
		t.Fatalf("passed on %v: every core event but the shell's batch note goes on", passed)
	}
	raw, _ := store.Read(AuthEventsFile)
	var kinds []string
	n, torn, err := ReadAuthEvents(strings.NewReader(string(raw)+`{"schema":"gridveil/auth-ev`), func(e AuthEvent) { kinds = append(kinds, e.Kind+"/"+e.Reason) })
	if err != nil || n != 3 || torn != 1 || strings.Join(kinds, ",") != "admitted/,batch-verified/,refused/expired" {
		t.Fatalf("read %d events %v, torn %d, err %v", n, kinds, torn, err)
	}
	if _, _, err := ReadAuthEvents(strings.NewReader(string(raw)+"{\"schema\":\"other\"}\n"), func(AuthEvent) {}); err == nil || !strings.Contains(err.Error(), "line 4") {
		t.Fatalf("a foreign line: %v", err)
	}
}
