package auth

import "fmt"

// ConnID names a connection of a party: a LAG's vehicle sessions, a CA's
// links and enrolment connections. For a LAG, ToCA is its link to the CA.
type ConnID uint64

// ToCA addresses a LAG's frames to its CA link.
const ToCA ConnID = 0

// Frame is one frame payload for a connection (the shell adds the length
// prefix of package wire).
type Frame struct {
	To   ConnID
	Data []byte
}

// Event is something a party decided or learned. Events are the parties'
// audit log: Detail says in words what the party now knows, and never more
// than the party itself holds.
type Event struct {
	Conn   ConnID
	Kind   string
	Detail string
	Err    error
	// Evidence is set on a LAG's "evidence" events: the record of a
	// session it admitted, for the shell to keep (see Evidence).
	Evidence *Evidence
}

func (e Event) String() string {
	s := fmt.Sprintf("[%d] %s", e.Conn, e.Kind)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Output is what a party returns from one step: frames to send,
// connections to close after sending, and events.
type Output struct {
	Frames []Frame
	Close  []ConnID
	Events []Event
}

func (o *Output) send(to ConnID, data []byte) { o.Frames = append(o.Frames, Frame{to, data}) }

func (o *Output) event(conn ConnID, kind, format string, args ...any) {
	o.Events = append(o.Events, Event{Conn: conn, Kind: kind, Detail: fmt.Sprintf(format, args...)})
}

func (o *Output) fail(conn ConnID, kind string, err error) {
	o.Events = append(o.Events, Event{Conn: conn, Kind: kind, Err: err})
}

func (o *Output) merge(p Output) {
	o.Frames = append(o.Frames, p.Frames...)
	o.Close = append(o.Close, p.Close...)
	o.Events = append(o.Events, p.Events...)
}
