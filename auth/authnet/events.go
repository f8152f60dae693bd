package authnet

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/gridveil/gridveil/auth"
)

// Anonymous authentication events (docs/PLATFORM.md, "Authentication
// events"): what a LAG and a CA did, for a dashboard to count, as JSON
// lines in the party's data directory. Anonymous by construction: an
// event is built from the core event's kind and its error's class only,
// never from its text (which may name a vehicle, a LAG or a session), and
// carries no connection number, no time and no credential reference, so
// nothing in the file names a vehicle or links two sessions of one.

// AuthEventSchema is the schema of every line of AuthEventsFile.
const AuthEventSchema = "gridveil/auth-event/v1"

// AuthEventsFile is the JSON-lines file of a party's anonymous events, in
// its data directory.
const AuthEventsFile = "auth-events.jsonl"

// Kinds of anonymous events.
const (
	EventAdmitted      = "admitted"       // a LAG granted a session after full authentication
	EventResumed       = "resumed"        // a LAG granted a session on a resumption ticket
	EventRefused       = "refused"        // a LAG or the CA refused an authentication, with Reason
	EventBatchVerified = "batch-verified" // a LAG verified a batch of credentials: Size, VerifySeconds
	EventRevoked       = "revoked"        // the CA revoked a vehicle or a LAG
)

// AuthEvent is one line of AuthEventsFile.
type AuthEvent struct {
	Schema string `json:"schema"`
	// Party is "lag" or "ca".
	Party string `json:"party"`
	Kind  string `json:"kind"`
	// Reason is a refusal's class (one of RefusalReasons).
	Reason string `json:"reason,omitempty"`
	// Size and VerifySeconds describe a verified batch: how many
	// authentication requests, and the wall time their verification took
	// on every core.
	Size          int     `json:"size,omitempty"`
	VerifySeconds float64 `json:"verify_seconds,omitempty"`
}

// refusalReasons name the auth package's error classes, most specific
// first (a stale ring is also a kind of revocation).
var refusalReasons = []struct {
	err  error
	name string
}{
	{auth.ErrStaleRing, "outdated group list"},
	{auth.ErrRevoked, "revoked"},
	{auth.ErrExpired, "expired"},
	{auth.ErrReplay, "replayed"},
	{auth.ErrCloned, "credential in use elsewhere"},
	{auth.ErrBadSignature, "bad signature"},
	{auth.ErrBadMAC, "bad authentication operator"},
	{auth.ErrUntrusted, "not certified by the CA"},
	{auth.ErrNoCredential, "no valid credential"},
	{auth.ErrDowngrade, "downgrade refused"},
	{auth.ErrChannel, "secure channel failed"},
	{auth.ErrState, "message out of order"},
	{auth.ErrNotPermitted, "not permitted"},
	{auth.ErrUnknown, "unknown session or member"},
	{auth.ErrUnavailable, "CA unavailable"},
	{auth.ErrMalformed, "malformed message"},
}

// RefusalReasons lists every Reason an event may carry, "other" last.
func RefusalReasons() []string {
	out := make([]string, 0, len(refusalReasons)+1)
	for _, r := range refusalReasons {
		out = append(out, r.name)
	}
	return append(out, "other")
}

// reasonOf is err's class; an error of no known class is "other".
func reasonOf(err error) string {
	for _, r := range refusalReasons {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return "other"
}

// batchKind is the core-event kind LAGServer.noteBatch reports a verified
// batch with (the auth core knows no time).
const batchKind = "authnet-batch-verified"

// Anonymous turns a core event of party ("lag" or "ca") into its anonymous
// event; ok is false for the events that are not counted.
func Anonymous(party string, e auth.Event) (ev AuthEvent, ok bool) {
	ev = AuthEvent{Schema: AuthEventSchema, Party: party}
	switch {
	case e.Kind == batchKind:
		var ns int64
		if _, err := fmt.Sscanf(e.Detail, "%d %d", &ev.Size, &ns); err != nil {
			return ev, false
		}
		ev.Kind, ev.VerifySeconds = EventBatchVerified, time.Duration(ns).Seconds()
	case e.Err != nil && (e.Kind == "rejected" || e.Kind == "verify" || e.Kind == "replay"):
		ev.Kind, ev.Reason = EventRefused, reasonOf(e.Err)
	case e.Err != nil:
		return ev, false // dropped answers, link failures: not authentication decisions
	case party == "lag" && e.Kind == "authenticated":
		ev.Kind = EventAdmitted
	case party == "lag" && e.Kind == "resumed":
		ev.Kind = EventResumed
	case party == "ca" && e.Kind == "revoked":
		ev.Kind = EventRevoked
	default:
		return ev, false
	}
	return ev, true
}

// AuthEventLog appends a party's anonymous events to its AuthEventsFile.
// Each event is one write of one line, so a crash can cut at most the
// last line, which a reader skips. The events are a record for operators,
// not a confirmation to anyone, so they are not synced one by one.
type AuthEventLog struct {
	mu  sync.Mutex
	f   *os.File
	err error
}

// OpenAuthEventLog opens (creating) the store's AuthEventsFile for
// appending.
func OpenAuthEventLog(store *Store) (*AuthEventLog, error) {
	f, err := os.OpenFile(store.Path(AuthEventsFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the authentication events file: %w", err)
	}
	return &AuthEventLog{f: f}, nil
}

// Wrap returns an EventFunc that records party's anonymous events and
// passes every event on to next (nil: none).
func (l *AuthEventLog) Wrap(party string, next EventFunc) EventFunc {
	return func(e auth.Event) {
		if ev, ok := Anonymous(party, e); ok {
			l.append(ev)
		}
		if next != nil && e.Kind != batchKind {
			next(e)
		}
	}
}

func (l *AuthEventLog) append(ev AuthEvent) {
	b, err := json.Marshal(ev)
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil || l.err != nil {
		return
	}
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		l.err = err // a full disk: stop recording rather than write half lines
	}
}

// Close syncs and closes the file; it reports a write that failed.
func (l *AuthEventLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return l.err
	}
	err := l.f.Sync()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	if l.err != nil {
		return fmt.Errorf("recording authentication events: %w", l.err)
	}
	return err
}

// ReadAuthEvents reads an AuthEventsFile, calling each for every event
// in order, and returns how many it read. A last line without its
// newline (cut by a crash) is skipped and counted in torn; any other line
// that is not an event of this schema is an error naming its line.
func ReadAuthEvents(r io.Reader, each func(AuthEvent)) (n, torn int, err error) {
	br := bufio.NewReader(r)
	for line := 1; ; line++ {
		b, rerr := br.ReadBytes('\n')
		if rerr == io.EOF {
			if len(b) > 0 {
				torn++
			}
			return n, torn, nil
		}
		if rerr != nil {
			return n, torn, rerr
		}
		var ev AuthEvent
		if err := json.Unmarshal(b, &ev); err != nil {
			return n, torn, fmt.Errorf("line %d is not JSON (%v)", line, err)
		}
		if ev.Schema != AuthEventSchema {
			return n, torn, fmt.Errorf("line %d has schema %q, this reader reads %q", line, ev.Schema, AuthEventSchema)
		}
		n++
		each(ev)
	}
}

// noteBatch reports a verified batch of n requests that took d to the
// server's event function, as dispatch reports the core's events.
func (s *LAGServer) noteBatch(n int, d time.Duration) {
	if n == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.onEvent != nil {
		s.onEvent(auth.Event{Kind: batchKind, Detail: fmt.Sprintf("%d %d", n, d.Nanoseconds())})
	}
}
