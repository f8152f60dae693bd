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
	// connection beyond it evicts the oldest unauthenticated connection of
	// the source that holds the most of them (logged; its own, when the
	// newcomer's source is among the heaviest), so that a source flooding
	// the server evicts its own connections, not other sources' pending
	// handshakes. Only when every source holds one does the oldest go.
	MaxUnauth int
	// MaxUnauthFrame is the largest frame an unauthenticated peer may
	// send: the largest first message of any protocol (an enrolment with
	// the most pseudonym keys, an authentication request over the largest
	// ring) with room to spare.
	MaxUnauthFrame int
	// HandshakeRate paces the handshakes of one source (connections per
	// second, after a burst of HandshakeBurst): a connection beyond the
	// rate waits for its turn before the server reads its first message
	// and spends its Diffie-Hellman operations on it. So one source cannot
	// make the server spend more than its share of handshakes, however
	// fast it opens and closes connections; the waiting ones count against
	// MaxPerSource and the deadline. Defaults 1000/s and 1000: far above
	// one honest party's rate (the LAG admits about 600 vehicles/s over
	// loopback from one source), a bound on a flooding one.
	HandshakeRate  float64
	HandshakeBurst int
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
	HandshakeRate:    1000,
	HandshakeBurst:   1000,
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
	if l.HandshakeRate > 0 {
		d.HandshakeRate = l.HandshakeRate
	}
	if l.HandshakeBurst > 0 {
		d.HandshakeBurst = l.HandshakeBurst
	}
	return d
}

// Reasons of the guard's refusals, in its log lines and errors.
var (
	errPerSource = errors.New("too many unauthenticated connections from this source")
	errEvicted   = errors.New("evicted: the oldest unauthenticated connection of the source holding the most, when the server was full of them")
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
	// buckets pace each source's handshakes (HandshakeRate); paced
	// counts the connections that had to wait, pacedLog when each source
	// was last logged as paced.
	buckets  map[string]*bucket
	paced    int
	pacedLog map[string]time.Time
}

// bucket is a source's token bucket: tokens at time last, which may be
// negative (turns reserved by connections that wait).
type bucket struct {
	tokens float64
	last   time.Time
}

// guarded is one connection under the guard.
type guarded struct {
	g      *guard
	conn   net.Conn
	source string
	authed bool // left the guard's limits
	closed bool
	paced  bool // waited its turn (HandshakeRate) already
	timer  *time.Timer
	// check, called by the handshake timer, reports whether the core now
	// counts the connection as authenticated.
	check func() bool
}

func newGuard(lim Limits, log *slog.Logger) *guard {
	return &guard{lim: lim.withDefaults(), log: log, perSource: map[string]int{}, refused: map[error]int{},
		buckets: map[string]*bucket{}, pacedLog: map[string]time.Time{}}
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
		evict = g.victimLocked(src)
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

// victimLocked picks the connection a newcomer from src evicts: the
// oldest of the source holding the most unauthenticated connections,
// counting the newcomer (a tie goes against the newcomer's own source), so
// that a flood evicts itself; when every source holds one, the oldest.
// Callers hold g.mu; the set is full, so not empty.
func (g *guard) victimLocked(src string) *guarded {
	heavy, most := src, g.perSource[src]+1
	for s, n := range g.perSource {
		if n > most {
			heavy, most = s, n
		}
	}
	if most > 1 {
		for _, u := range g.unauth {
			if u.source == heavy {
				return u
			}
		}
	}
	return g.unauth[0]
}

// turn reserves the next handshake turn of source src at now and returns
// how long the connection must wait for it (0: at once). A pure function
// of the bucket and now, for tests.
func (g *guard) turn(src string, now time.Time) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	b := g.buckets[src]
	burst := float64(g.lim.HandshakeBurst)
	if b == nil {
		if len(g.buckets) >= 4*g.lim.MaxUnauth {
			g.sweepLocked(now)
		}
		b = &bucket{tokens: burst, last: now}
		g.buckets[src] = b
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(burst, b.tokens+dt*g.lim.HandshakeRate)
		b.last = now
	}
	b.tokens--
	if b.tokens >= 0 {
		return 0
	}
	g.paced++
	return time.Duration(-b.tokens / g.lim.HandshakeRate * float64(time.Second))
}

// sweepLocked forgets the buckets that are full again (their sources
// have been quiet), so that the map stays bounded.
func (g *guard) sweepLocked(now time.Time) {
	for s, b := range g.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*g.lim.HandshakeRate >= float64(g.lim.HandshakeBurst) {
			delete(g.buckets, s)
		}
	}
	for s, t := range g.pacedLog {
		if now.Sub(t) > time.Minute {
			delete(g.pacedLog, s)
		}
	}
}

// pace waits for e's handshake turn (once per connection, before its
// first frame is read), logging at most every 10 s per source that it
// paced it. The wait ends early if the connection is closed (evicted, or
// past its deadline).
func (e *guarded) pace() {
	if e.paced {
		return
	}
	e.paced = true
	now := time.Now()
	wait := e.g.turn(e.source, now)
	if wait <= 0 {
		return
	}
	g := e.g
	g.mu.Lock()
	logIt := now.Sub(g.pacedLog[e.source]) >= 10*time.Second
	if logIt {
		g.pacedLog[e.source] = now
	}
	g.mu.Unlock()
	if logIt {
		g.log.Warn("handshakes paced", "reason", "more handshakes from this source than its rate", "from", e.conn.RemoteAddr(),
			"rate_per_s", g.lim.HandshakeRate, "burst", g.lim.HandshakeBurst, "wait", wait)
	}
	time.Sleep(min(wait, g.lim.HandshakeTimeout))
}

// Paced is the number of connections that waited for their handshake
// turn.
func (g *guard) Paced() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.paced
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
		e.pace() // before anything of the first frame is processed
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
