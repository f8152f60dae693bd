package dashboard

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"sync"

	"github.com/gridveil/gridveil/service"
	"github.com/gridveil/gridveil/transport"
)

// progressSchema is the schema of the SO's progress messages.
const progressSchema = "gridveil/coord-progress/v1"

// maxHistory bounds the convergence points kept (and sent to a browser
// that connects): a day that runs longer keeps its latest state and says
// the history was cut.
const maxHistory = 20000

// Point is one completed iteration's convergence figures.
type Point struct {
	Iter      int      `json:"iteration"`
	Objective float64  `json:"objective"`
	Change    float64  `json:"change_kw"`
	Violation float64  `json:"violation_pu"`
	Gap       *float64 `json:"relative_gap"`
}

// LiveState is /api/v1/live and the first server-sent event of every
// stream: everything the server knows of the coordination it follows, so
// a browser that connects (or reconnects) draws the whole day so far.
type LiveState struct {
	Schema string `json:"schema"` // gridveil/dashboard-live/v1
	// Following is false when the dashboard subscribes to nothing
	// (no --nats).
	Following bool   `json:"following"`
	Subject   string `json:"subject,omitempty"`
	// Day counts the coordinations seen: an iteration number lower than
	// the last one starts a new day and clears the history.
	Day     int `json:"day"`
	Updates int `json:"updates"`
	// Refused counts messages on the subject that were not progress
	// messages this dashboard reads; LastRefusal says why the last was.
	Refused          int               `json:"refused"`
	LastRefusal      string            `json:"last_refusal,omitempty"`
	Latest           *service.Progress `json:"latest"`
	History          []Point           `json:"history"`
	HistoryTruncated bool              `json:"history_truncated"`
	// StreamBytes is what the server has sent on every /api/v1/events
	// stream so far: what following the day costs the browsers.
	StreamBytes int64 `json:"stream_bytes"`
}

// Delta is a server-sent "progress" event: the iterations completed since
// the stream's last event (starting with the last one it sent, which a
// certification may have changed: a point replaces the one of the same
// iteration) and the latest aggregate. Events are coalesced:
// a browser that cannot keep up gets fewer events, each with more points.
type Delta struct {
	Day     int               `json:"day"`
	Updates int               `json:"updates"`
	Refused int               `json:"refused"`
	Latest  *service.Progress `json:"latest"`
	Points  []Point           `json:"points"`
}

// Live keeps the state of the coordination the dashboard follows.
type Live struct {
	mu      sync.Mutex
	st      LiveState
	changed chan struct{} // closed and replaced on every change
	log     *slog.Logger
}

// NewLive returns an empty live state; log may be nil.
func NewLive(log *slog.Logger) *Live {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Live{st: LiveState{Schema: "gridveil/dashboard-live/v1", History: []Point{}}, changed: make(chan struct{}), log: log}
}

// Follow subscribes to the SO's progress subject on conn; the returned
// function unsubscribes.
func (l *Live) Follow(conn *transport.Conn) (func() error, error) {
	unsub, err := conn.Subscribe(transport.CoordProgress, "", func(_ string, data []byte) { _ = l.Apply(data) })
	if err != nil {
		return nil, fmt.Errorf("subscribing to %s: %w", transport.CoordProgress, err)
	}
	l.mu.Lock()
	l.st.Following, l.st.Subject = true, transport.CoordProgress
	l.bump()
	l.mu.Unlock()
	return unsub, nil
}

// Apply takes one progress message as the SO publishes it. A message that
// is not one (bad JSON, another schema, impossible numbers) is counted and
// logged, and changes nothing else.
func (l *Live) Apply(data []byte) error {
	var p service.Progress
	err := json.Unmarshal(data, &p)
	switch {
	case err != nil:
		err = fmt.Errorf("progress message is not JSON: %w", err)
	case p.Schema != progressSchema:
		err = fmt.Errorf("progress message has schema %q, this dashboard reads %q: run a dashboard of the SO's gridveil version", p.Schema, progressSchema)
	case p.Iter < 0 || math.IsNaN(p.Objective) || math.IsInf(p.Objective, 0):
		err = fmt.Errorf("progress message has iteration %d and objective %v: not an SO's", p.Iter, p.Objective)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.st.Refused++
		l.st.LastRefusal = err.Error()
		l.log.Warn("progress message refused", "err", err)
		l.bump()
		return err
	}
	pt := Point{Iter: p.Iter, Objective: p.Objective, Change: p.Change, Violation: p.Violation, Gap: p.Gap}
	if l.st.Latest != nil && p.Iter < l.st.Latest.Iter {
		// A lower iteration: a new coordination began.
		l.st.Day++
		l.st.History = []Point{}
		l.st.HistoryTruncated = false
	}
	if l.st.Day == 0 {
		l.st.Day = 1
	}
	l.st.Updates++
	n := len(l.st.History)
	switch {
	case n > 0 && l.st.History[n-1].Iter == p.Iter:
		// The same iteration again: the SO publishes an iteration once when
		// it steps and once more when it certifies the step (with the
		// duality gap, and converged when the gap is small enough). The
		// later message is the iteration's final word.
		l.st.History[n-1] = pt
	case n < maxHistory:
		l.st.History = append(l.st.History, pt)
	default:
		l.st.HistoryTruncated = true
	}
	l.st.Latest = &p
	l.bump()
	return nil
}

// bump wakes every stream; l.mu is held.
func (l *Live) bump() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// State is a copy of the current state.
func (l *Live) State() LiveState {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.st
	st.History = append([]Point{}, l.st.History...)
	return st
}

// cursor is where a stream stands: the day and how many history points it
// has sent.
type cursor struct {
	day, sent, refused int
	latest             *service.Progress
}

// next returns what a stream at c has not seen: a full state when the day
// changed (or first), else a delta, or nothing; and the channel that is
// closed at the next change.
func (l *Live) next(c *cursor, first bool) (full *LiveState, delta *Delta, wait <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	wait = l.changed
	if first || c.day != l.st.Day {
		st := l.st
		st.History = append([]Point{}, l.st.History...)
		c.day, c.sent, c.refused, c.latest = l.st.Day, len(l.st.History), l.st.Refused, l.st.Latest
		return &st, nil, wait
	}
	if c.latest == l.st.Latest && c.refused == l.st.Refused {
		return nil, nil, wait
	}
	// The stream's last point is sent again: a certification may have
	// replaced it (the browser replaces a point of the same iteration).
	from := min(max(c.sent-1, 0), len(l.st.History))
	d := &Delta{Day: l.st.Day, Updates: l.st.Updates, Refused: l.st.Refused, Latest: l.st.Latest, Points: append([]Point{}, l.st.History[from:]...)}
	c.sent, c.refused, c.latest = len(l.st.History), l.st.Refused, l.st.Latest
	return nil, d, wait
}

func (l *Live) addStreamBytes(n int) {
	l.mu.Lock()
	l.st.StreamBytes += int64(n)
	l.mu.Unlock()
}
