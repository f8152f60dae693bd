package authnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/gridveil/gridveil/auth/wire"
)

// Limits bound what peers that have not authenticated yet can make a
// server hold: connections (in all and per source address), time, and
// memory. A peer leaves them once the core counts it as authenticated
// (auth.CA.Authenticated, auth.LAG.Authenticated). Zero fields take the
// defaults of DefaultLimits.
type Limits struct {
	// HandshakeTimeout closes a connection that has not authenticated so
	// long after it was accepted (for the CA's enrolment connections,
	// which never authenticate: that has not finished).
	HandshakeTimeout time.Duration
	// MaxPerSource bounds unauthenticated connections from one IP
	// address; more are refused (and logged).
	MaxPerSource int
	// MaxUnauth bounds unauthenticated connections in all. A new
	// connection beyond it evicts the oldest unauthenticated one (logged),
	// so that idle connections from many sources delay an honest peer by
	// one handshake at most, instead of shutting it out.
	MaxUnauth int
	// MaxUnauthFrame is the largest frame an unauthenticated peer may
	// send: the largest first message of any protocol (an enrolment with
	// the most pseudonym keys, an authentication request over the largest
	// ring) with room to spare.
	MaxUnauthFrame int
	// UnauthMemory bounds the bytes of frames held for all
	// unauthenticated peers at once. Frame buffers grow as bytes arrive,
	// so an announced length costs nothing; a peer whose next bytes would
	// pass the budget is disconnected (logged).
	UnauthMemory int
}

// DefaultLimits are the limits a server takes for zero fields.
var DefaultLimits = Limits{
	HandshakeTimeout: 30 * time.Second,
	MaxPerSource:     64,
	MaxUnauth:        1024,
	MaxUnauthFrame:   64 << 10,
	UnauthMemory:     32 << 20,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.HandshakeTimeout > 0 {
		d.HandshakeTimeout = l.HandshakeTimeout
	}
	if l.MaxPerSource > 0 {
		d.MaxPerSource = l.MaxPerSource
	}
	if l.MaxUnauth > 0 {
		d.MaxUnauth = l.MaxUnauth
	}
	if l.MaxUnauthFrame > 0 {
		d.MaxUnauthFrame = l.MaxUnauthFrame
	}
	if l.UnauthMemory > 0 {
		d.UnauthMemory = l.UnauthMemory
	}
	return d
}

// Reasons of the guard's refusals, in its log lines and errors.
var (
	errPerSource = errors.New("too many unauthenticated connections from this source")
	errEvicted   = errors.New("evicted: the oldest unauthenticated connection when the server was full of them")
	errDeadline  = errors.New("not authenticated within the handshake deadline")
	errMemory    = errors.New("the memory budget for unauthenticated peers is spent")
	errTooLarge  = errors.New("frame larger than an unauthenticated peer may send")
)

// guard enforces Limits over the connections of one server.
type guard struct {
	lim Limits
	log *slog.Logger

	mu        sync.Mutex
	perSource map[string]int
	unauth    []*guarded // oldest first
	held      int        // bytes reserved by unauthenticated peers' frames
	refused   map[error]int
}

// guarded is one connection under the guard.
type guarded struct {
	g      *guard
	conn   net.Conn
	source string
	authed bool // left the guard's limits
	closed bool
	timer  *time.Timer
	// check, called by the handshake timer, reports whether the core now
	// counts the connection as authenticated.
	check func() bool
}

func newGuard(lim Limits, log *slog.Logger) *guard {
	return &guard{lim: lim.withDefaults(), log: log, perSource: map[string]int{}, refused: map[error]int{}}
}

func sourceOf(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return c.RemoteAddr().String()
}

// admit takes a new connection under the guard, or refuses it (and logs
// why). check tells whether the core counts the connection as
// authenticated; the handshake timer asks it before closing.
func (g *guard) admit(c net.Conn, check func() bool) (*guarded, error) {
	src := sourceOf(c)
	g.mu.Lock()
	if g.perSource[src] >= g.lim.MaxPerSource {
		g.refused[errPerSource]++
		g.mu.Unlock()
		g.log.Warn("connection refused", "reason", errPerSource, "from", c.RemoteAddr(), "max_per_source", g.lim.MaxPerSource)
		return nil, errPerSource
	}
	var evict *guarded
	if len(g.unauth) >= g.lim.MaxUnauth {
		evict = g.unauth[0]
		g.dropLocked(evict)
		g.refused[errEvicted]++
	}
	e := &guarded{g: g, conn: c, source: src, check: check}
	g.perSource[src]++
	g.unauth = append(g.unauth, e)
	e.timer = time.AfterFunc(g.lim.HandshakeTimeout, e.expire)
	g.mu.Unlock()
	if evict != nil {
		g.log.Warn("connection closed", "reason", errEvicted, "from", evict.conn.RemoteAddr(), "max_unauthenticated", g.lim.MaxUnauth)
		evict.conn.Close()
	}
	return e, nil
}

// setHandshakeTimeout changes the deadline of connections accepted from
// now on (tests).
func (g *guard) setHandshakeTimeout(d time.Duration) {
	g.mu.Lock()
	g.lim.HandshakeTimeout = d
	g.mu.Unlock()
}

// dropLocked takes e out of the unauthenticated set. Callers hold g.mu.
func (g *guard) dropLocked(e *guarded) {
	if e.authed || e.closed {
		return
	}
	e.closed = true
	if e.timer != nil {
		e.timer.Stop()
	}
	g.perSource[e.source]--
	if g.perSource[e.source] == 0 {
		delete(g.perSource, e.source)
	}
	for i, u := range g.unauth {
		if u == e {
			g.unauth = append(g.unauth[:i], g.unauth[i+1:]...)
			break
		}
	}
}

// expire closes a connection that has not authenticated in time.
func (e *guarded) expire() {
	if e.check() {
		e.promote()
		return
	}
	g := e.g
	g.mu.Lock()
	if e.authed || e.closed {
		g.mu.Unlock()
		return
	}
	g.dropLocked(e)
	g.refused[errDeadline]++
	d := g.lim.HandshakeTimeout
	g.mu.Unlock()
	g.log.Warn("connection closed", "reason", errDeadline, "from", e.conn.RemoteAddr(), "deadline", d)
	e.conn.Close()
}

// promote lets an authenticated connection out of the guard's limits.
func (e *guarded) promote() {
	g := e.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if e.authed || e.closed {
		return
	}
	g.dropLocked(e)
	e.closed = false
	e.authed = true
}

// release is called when the connection ends.
func (e *guarded) release() {
	e.g.mu.Lock()
	e.g.dropLocked(e)
	e.g.mu.Unlock()
}

func (e *guarded) isAuthed() bool {
	e.g.mu.Lock()
	defer e.g.mu.Unlock()
	return e.authed
}

// reserve takes n bytes of the unauthenticated peers' budget for e.
func (e *guarded) reserve(n int) error {
	g := e.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if e.authed {
		return nil
	}
	if g.held+n > g.lim.UnauthMemory {
		g.refused[errMemory]++
		return errMemory
	}
	g.held += n
	return nil
}

func (g *guard) unreserve(n int) {
	g.mu.Lock()
	g.held -= n
	g.mu.Unlock()
}

// Held is the number of bytes reserved by unauthenticated peers' frames.
func (g *guard) Held() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held
}

// Refused counts the guard's refusals by reason.
func (g *guard) Refused(reason error) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.refused[reason]
}

// frameChunk is how much a frame's buffer grows at a time: what a peer
// makes the server allocate is what it sent, plus at most one chunk.
const frameChunk = 16 << 10

// readFrame reads one frame of at most limit bytes (MaxUnauthFrame while
// e is unauthenticated). Its buffer grows as the bytes arrive, each
// growth taken from the budget while e is unauthenticated; the frame's
// reservation is returned with it, for the caller to give back (done)
// once the frame is processed.
func (e *guarded) readFrame(r io.Reader, limit int) (frame []byte, done func(), err error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[:]))
	authed := e.isAuthed()
	if !authed && e.check() { // authenticated since its last frame (a batch verified it)
		e.promote()
		authed = true
	}
	if !authed {
		limit = min(limit, e.g.lim.MaxUnauthFrame)
	}
	if n == 0 {
		return nil, nil, fmt.Errorf("%w: empty frame", wire.ErrMalformed)
	}
	if n > limit {
		if !authed {
			e.g.mu.Lock()
			e.g.refused[errTooLarge]++
			e.g.mu.Unlock()
			return nil, nil, fmt.Errorf("%w: %d bytes announced, at most %d: %w", wire.ErrFrameTooLarge, n, limit, errTooLarge)
		}
		return nil, nil, fmt.Errorf("%w: %d bytes announced, at most %d", wire.ErrFrameTooLarge, n, limit)
	}
	reserved := 0
	done = func() {
		if reserved > 0 {
			e.g.unreserve(reserved)
			reserved = 0
		}
	}
	// take reserves every buffer allocated for the frame (the ones it
	// outgrew are garbage, but held until collected).
	take := func(size int) error {
		if authed {
			return nil
		}
		if err := e.reserve(size); err != nil {
			return err
		}
		reserved += size
		return nil
	}
	size := min(n, frameChunk)
	if err := take(size); err != nil {
		return nil, nil, fmt.Errorf("frame of %d bytes: %w", n, err)
	}
	buf := make([]byte, 0, size)
	for len(buf) < n {
		if len(buf) == cap(buf) {
			size = min(n, 2*cap(buf))
			if err := take(size); err != nil {
				done()
				return nil, nil, fmt.Errorf("frame of %d bytes, %d read: %w", n, len(buf), err)
			}
			nb := make([]byte, len(buf), size)
			copy(nb, buf)
			buf = nb
		}
		m, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err != nil && len(buf) < n {
			done()
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, nil, fmt.Errorf("frame of %d bytes truncated after %d: %w", n, len(buf), err)
		}
	}
	return buf, done, nil
}
