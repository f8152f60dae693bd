package authnet

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gridveil/gridveil/auth"
)

// Idle connections are dropped after IdleTimeout; a party that means to
// stay connected sends a keepalive every KeepaliveEvery.
const (
	IdleTimeout    = 10 * time.Minute
	KeepaliveEvery = time.Minute
)

// EventFunc receives every event of a party, as it happens.
type EventFunc func(auth.Event)

// CAServer serves the CA core over TCP. Every state change the core makes
// is written to the CA's database and synced to the disk before any answer
// of the step that made it is sent: what the CA confirms (an enrolment, a
// certificate, a revocation, a permit, a billing record) survives a crash.
// The writes are batched (group commit): one committer goroutine takes
// every step queued while the previous sync ran, writes their changes in
// one transaction, then sends their answers in the order the core made
// them (Noise nonces need that order).
type CAServer struct {
	mu      sync.Mutex // the core, peers, the commit queue
	ca      *auth.CA
	store   *Store
	db      *caDB
	peers   map[auth.ConnID]*peer
	onEvent EventFunc
	log     *slog.Logger

	queue   []*commitItem
	wake    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
	closed  bool
	failed  error
	cancel  context.CancelFunc
	commits int

	// MaxConns bounds simultaneous connections; default 4096.
	MaxConns int
	// ExpireEvery is how often the CA forgets expired serials and
	// sessions; default one minute.
	ExpireEvery time.Duration
	// IdleTimeout drops a connection that sent nothing for so long;
	// default IdleTimeout.
	IdleTimeout time.Duration
	// Limits bound what unauthenticated peers (enrolling parties, and
	// connections that have not finished their handshake) can make the
	// CA hold; zero fields take DefaultLimits. Set before Serve.
	Limits Limits
	guard  *guard
	// CommitHook, when set, is called by the committer around its nth
	// transaction (from 1): before the write (synced false) and once it
	// reached the disk, before any of its answers is sent (synced true).
	// Tests use it to crash the CA at chosen points.
	CommitHook func(n int, synced bool)
}

// commitItem is one step's output, waiting for its changes to be on disk.
type commitItem struct {
	out  auth.Output
	recs []auth.Record
	done chan struct{}
	err  error
}

// Files of the CA's data directory.
const (
	caKeyFile   = "ca.key"
	caPubFile   = "public.key"
	caTokenFile = "enrol.token"
	// caTokenFile is the shared enrolment token, written only with
	// CAConfig.SharedToken (a migration from earlier versions).
	// caStateFile is the whole-state JSON of earlier versions, imported
	// into caDBFile once and renamed caStateFile+".imported".
	caStateFile = "state.json"
	// AdminKeyFile holds the operator's X25519 private key, hex (0600):
	// whoever reads it may trace and revoke through the running CA
	// (gridveil ca trace, gridveil ca revoke).
	AdminKeyFile = "admin.key"
)

// CAFiles are the files a CA's start writes to its data directory, its
// bound address (addr) last: a start that fails may remove them from a
// directory it created.
var CAFiles = []string{caKeyFile, caTokenFile, caPubFile, AdminKeyFile, caDBFile, "addr"}

// OpenCA loads the CA from its data directory, creating keys on first use.
// It holds the data directory's database until Serve returns (or Close).
func OpenCA(store *Store, cfg auth.CAConfig, log *slog.Logger, onEvent EventFunc) (*CAServer, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	keys, err := loadOrCreateCAKeys(store)
	if err != nil {
		return nil, err
	}
	// The shared token is written out only for a CA that still accepts it
	// (a migration); without it the CA admits by per-identity credentials
	// alone (gridveil ca issue), and an old enrol.token left in the
	// directory admits no one.
	if cfg.SharedToken && !store.Exists(caTokenFile) {
		if err := store.Write(caTokenFile, []byte(hex.EncodeToString(keys.EnrolToken[:])+"\n"), 0o600); err != nil {
			return nil, err
		}
	}
	admin, err := loadOrCreateAdminKey(store)
	if err != nil {
		return nil, err
	}
	cfg.AdminKey = [32]byte(admin.Public)
	db, err := openCADB(store)
	if err != nil {
		return nil, err
	}
	ca, err := loadCA(store, db, keys, cfg, log)
	if err != nil {
		db.close()
		return nil, err
	}
	s := &CAServer{ca: ca, store: store, db: db, peers: map[auth.ConnID]*peer{}, onEvent: onEvent, log: log,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{}),
		MaxConns: 4096, ExpireEvery: time.Minute, IdleTimeout: IdleTimeout}
	go s.committer()
	return s, nil
}

// loadCA restores the core from the database; a new database is filled
// from an old state.json if there is one, else from a new CA.
func loadCA(store *Store, db *caDB, keys *auth.CAKeys, cfg auth.CAConfig, log *slog.Logger) (*auth.CA, error) {
	var ca *auth.CA
	var err error
	if !db.empty() {
		if ca, err = auth.RestoreCAFrom(keys, cfg, db.scan); err != nil {
			return nil, fmt.Errorf("%s: %w (the database does not hold a valid CA state; restore it from a backup)", store.Path(caDBFile), err)
		}
	} else {
		old, rerr := store.Read(caStateFile)
		switch {
		case rerr == nil:
			if ca, err = auth.RestoreCA(keys, cfg, old); err != nil {
				return nil, fmt.Errorf("importing %s: %w", store.Path(caStateFile), err)
			}
		case isNotExist(rerr):
			if ca, err = auth.NewCA(keys, cfg); err != nil {
				return nil, err
			}
		default:
			return nil, rerr
		}
		if err := db.write(ca.Records()); err != nil {
			return nil, err
		}
		if rerr == nil {
			if err := os.Rename(store.Path(caStateFile), store.Path(caStateFile+".imported")); err != nil {
				return nil, fmt.Errorf("importing %s: %w", caStateFile, err)
			}
			log.Warn("imported the CA state from state.json into state.db", "kept_as", caStateFile+".imported")
		}
	}
	ca.Expire(time.Now())
	if recs := ca.TakeChanges(); len(recs) > 0 {
		if err := db.write(recs); err != nil {
			return nil, err
		}
	}
	return ca, nil
}

func loadOrCreateCAKeys(store *Store) (*auth.CAKeys, error) {
	b, err := store.Read(caKeyFile)
	if err == nil {
		return auth.ParseCAKeys(b)
	}
	if !isNotExist(err) {
		return nil, err
	}
	keys, err := auth.GenerateCAKeys()
	if err != nil {
		return nil, err
	}
	if err := store.Write(caKeyFile, keys.Marshal(), 0o600); err != nil {
		return nil, err
	}
	if err := store.Write(caPubFile, []byte(hex.EncodeToString(keys.Public().Marshal())+"\n"), 0o644); err != nil {
		return nil, err
	}
	return keys, nil
}

// ReadCAPublic reads a public.key file.
func ReadCAPublic(path string) (auth.CAPublic, error) {
	b, err := readHexFile(path)
	if err != nil {
		return auth.CAPublic{}, err
	}
	return auth.ParseCAPublic(b)
}

// ReadToken reads an enrol.token file, or an enrolment credential file
// (CredentialFile): both are 32 bytes of hex.
func ReadToken(path string) ([32]byte, error) {
	b, err := readHexFile(path)
	if err != nil {
		return [32]byte{}, err
	}
	if len(b) != 32 {
		return [32]byte{}, fmt.Errorf("%s: want 32 bytes of hex", path)
	}
	return [32]byte(b), nil
}

// readHexFile reads a file of hex. It only reads: a missing file creates
// no directory (so a command that fails for want of the CA's files leaves
// nothing behind).
func readHexFile(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Base(path), err)
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// Public is the CA's public keys.
func (s *CAServer) Public() auth.CAPublic { return s.ca.Public() }

// CredentialFile is the name under which an enrolment credential for a
// vehicle or LAG is kept: vehicle-NAME.cred or lag-NAME.cred (gridveil ca
// issue writes them, agent bv and serve --role lag read them).
func CredentialFile(kind auth.CredentialKind, name string) string {
	return kind.String() + "-" + name + ".cred"
}

// WriteCredential keeps an enrolment credential in dir (mode 0600).
func WriteCredential(dir string, kind auth.CredentialKind, name string, secret [32]byte) (string, error) {
	st, err := OpenStore(dir)
	if err != nil {
		return "", err
	}
	file := CredentialFile(kind, name)
	if err := st.Write(file, []byte(hex.EncodeToString(secret[:])+"\n"), 0o600); err != nil {
		return "", err
	}
	return st.Path(file), nil
}

// IssueCredential has the running CA issue an enrolment credential (for
// tools in the CA's process and tests; an operator elsewhere uses
// auth.NewAdminIssue). It returns once the credential is on disk.
func (s *CAServer) IssueCredential(kind auth.CredentialKind, name string) ([32]byte, error) {
	var secret [32]byte
	err := s.Do(func(now time.Time, ca *auth.CA) (auth.Output, error) {
		var out auth.Output
		var err error
		secret, out, err = ca.IssueCredential(now, kind, name)
		return out, err
	})
	return secret, err
}

// Do runs f on the CA core under its lock and sends what f returns once
// its changes are on disk: the way to revoke, request discharges or trace
// while serving. It returns f's error, or the commit's.
func (s *CAServer) Do(f func(now time.Time, ca *auth.CA) (auth.Output, error)) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("the CA server is closed")
	}
	out, err := f(time.Now(), s.ca)
	it := s.enqueue(out)
	s.mu.Unlock()
	<-it.done
	if err == nil {
		err = it.err
	}
	return err
}

// enqueue queues a step's output with the changes it made. Callers hold
// mu, so the queue's order is the core's.
func (s *CAServer) enqueue(out auth.Output) *commitItem {
	it := &commitItem{out: out, recs: s.ca.TakeChanges(), done: make(chan struct{})}
	if s.closed {
		it.err = errors.New("the CA server is closed")
		close(it.done)
		return it
	}
	s.queue = append(s.queue, it)
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return it
}

// committer writes the queued changes, a batch per transaction, and sends
// each step's output once its transaction is on disk. A failed write stops
// the CA: its memory is then ahead of its disk, and it must not confirm
// anything more.
func (s *CAServer) committer() {
	defer close(s.stopped)
	for {
		select {
		case <-s.wake:
		case <-s.stop:
			s.mu.Lock()
			left := len(s.queue)
			s.mu.Unlock()
			if left == 0 {
				return
			}
		}
		s.mu.Lock()
		batch := s.queue
		s.queue = nil
		failed := s.failed
		s.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		var recs []auth.Record
		for _, it := range batch {
			recs = append(recs, it.recs...)
		}
		err := failed
		if err == nil && len(recs) > 0 {
			s.commits++
			if s.CommitHook != nil {
				s.CommitHook(s.commits, false)
			}
			if err = s.db.write(recs); err == nil && s.CommitHook != nil {
				s.CommitHook(s.commits, true)
			}
		}
		s.mu.Lock()
		if err != nil && s.failed == nil {
			s.failed = err
			s.log.Error("the CA stops: its state could not be written, so it confirms nothing more", "err", err)
			for _, p := range s.peers {
				p.close()
			}
			if s.cancel != nil {
				s.cancel()
			}
		}
		for _, it := range batch {
			if err == nil {
				s.dispatch(it.out)
			}
			it.err = err
			close(it.done)
		}
		s.mu.Unlock()
	}
}

// Close stops the committer after what is queued and closes the database.
// Serve calls it when it returns.
func (s *CAServer) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	select {
	case s.wake <- struct{}{}:
	default:
	}
	<-s.stopped
	return s.db.close()
}

// Serve accepts connections on ln until ctx ends (or a write of the state
// fails: then it returns that error), then closes the CA.
func (s *CAServer) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	s.cancel = cancel
	s.mu.Unlock()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	s.mu.Lock()
	s.guard = newGuard(s.Limits, s.log)
	g := s.guard
	s.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { s.expirer(ctx) })
	defer func() {
		s.mu.Lock()
		for _, p := range s.peers {
			p.close()
		}
		s.mu.Unlock()
		wg.Wait()
		if err := s.Close(); err != nil {
			s.log.Error("closing the CA's state", "err", err)
		}
	}()
	for {
		c, err := accept(ctx, ln)
		if err != nil || c == nil {
			s.mu.Lock()
			failed := s.failed
			s.mu.Unlock()
			if err == nil {
				err = failed
			}
			return err
		}
		s.mu.Lock()
		if len(s.peers) >= s.MaxConns {
			n := len(s.peers)
			s.mu.Unlock()
			s.log.Warn("connection refused: at capacity", "from", c.RemoteAddr(), "conns", n, "max", s.MaxConns)
			c.Close()
			continue
		}
		id := s.ca.Open()
		s.mu.Unlock()
		e, err := g.admit(c, func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.ca.Authenticated(id)
		})
		if err != nil {
			s.mu.Lock()
			s.ca.Close(id)
			s.mu.Unlock()
			c.Close()
			continue
		}
		p := newPeer(c)
		s.mu.Lock()
		s.peers[id] = p
		s.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(id, p, e)
		}()
	}
}

// expirer forgets what the CA no longer needs, every ExpireEvery.
func (s *CAServer) expirer(ctx context.Context) {
	t := time.NewTicker(s.ExpireEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.mu.Lock()
			s.enqueue(s.ca.Expire(time.Now()))
			s.mu.Unlock()
		}
	}
}

func (s *CAServer) serveConn(id auth.ConnID, p *peer, e *guarded) {
	defer func() {
		e.release()
		s.mu.Lock()
		s.ca.Close(id)
		it := s.enqueue(auth.Output{})
		s.mu.Unlock()
		<-it.done // what was queued for this connection is sent
		s.mu.Lock()
		delete(s.peers, id)
		s.mu.Unlock()
		p.drainAndClose()
	}()
	for {
		_ = p.conn.SetReadDeadline(time.Now().Add(s.IdleTimeout))
		f, done, err := e.readFrame(p.conn, maxLinkFrame)
		if err != nil {
			if !isClosing(err) {
				s.log.Warn("connection dropped", "conn", id, "from", p.conn.RemoteAddr(), "reason", err)
			}
			return
		}
		if isKeepalive(f) {
			done()
			p.send(keepaliveFrame) // answered, so that the LAG can tell a dead link
			continue
		}
		s.mu.Lock()
		out, err := s.ca.Receive(time.Now(), id, f)
		it := s.enqueue(out)
		authed := err == nil && s.ca.Authenticated(id)
		s.mu.Unlock()
		done()
		if err != nil {
			<-it.done
			s.log.Warn("connection refused", "conn", id, "from", p.conn.RemoteAddr(), "reason", err)
			return
		}
		if authed {
			e.promote()
		}
	}
}

// dispatch sends an output's frames and records its events. Callers hold mu.
func (s *CAServer) dispatch(out auth.Output) {
	for _, f := range out.Frames {
		if p := s.peers[f.To]; p != nil {
			p.send(f.Data)
		}
	}
	for _, id := range out.Close {
		if p := s.peers[id]; p != nil {
			p.closeAfter()
		}
	}
	for _, e := range out.Events {
		if s.onEvent != nil {
			s.onEvent(e)
		}
		if e.Err != nil { // a refusal: visible at the default level
			s.log.Warn("ca refused", "kind", e.Kind, "conn", e.Conn, "reason", e.Err)
		} else {
			s.log.Debug("ca event", "event", e.String())
		}
	}
}
