package authnet

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gridveil/gridveil/auth"
	"github.com/gridveil/gridveil/auth/wire"
)

// Idle connections are dropped after IdleTimeout.
const IdleTimeout = 10 * time.Minute

// EventFunc receives every event of a party, as it happens.
type EventFunc func(auth.Event)

// CAServer serves the CA core over TCP.
type CAServer struct {
	mu      sync.Mutex
	ca      *auth.CA
	store   *Store
	peers   map[auth.ConnID]*peer
	onEvent EventFunc
	log     *slog.Logger
	dirty   bool
	// SaveEvery is how often changed state is written; default 200 ms.
	SaveEvery time.Duration
	// MaxConns bounds simultaneous connections; default 4096.
	MaxConns int
}

// Files of the CA's data directory.
const (
	caKeyFile   = "ca.key"
	caPubFile   = "public.key"
	caTokenFile = "enrol.token"
	caStateFile = "state.json"
	// AdminKeyFile holds the operator's X25519 private key, hex (0600):
	// whoever reads it may trace and revoke through the running CA
	// (gridveil ca trace, gridveil ca revoke).
	AdminKeyFile = "admin.key"
)

// CAFiles are the files a CA's start writes to its data directory, its
// bound address (addr) last: a start that fails may remove them from a
// directory it created.
var CAFiles = []string{caKeyFile, caTokenFile, caPubFile, AdminKeyFile, caStateFile, "addr"}

// OpenCA loads the CA from its data directory, creating keys on first use.
func OpenCA(store *Store, cfg auth.CAConfig, log *slog.Logger, onEvent EventFunc) (*CAServer, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	keys, err := loadOrCreateCAKeys(store)
	if err != nil {
		return nil, err
	}
	admin, err := loadOrCreateAdminKey(store)
	if err != nil {
		return nil, err
	}
	cfg.AdminKey = [32]byte(admin.Public)
	var ca *auth.CA
	state, err := store.Read(caStateFile)
	switch {
	case err == nil:
		if ca, err = auth.RestoreCA(keys, cfg, state); err != nil {
			return nil, err
		}
	case isNotExist(err):
		if ca, err = auth.NewCA(keys, cfg); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	s := &CAServer{ca: ca, store: store, peers: map[auth.ConnID]*peer{}, onEvent: onEvent, log: log,
		SaveEvery: 200 * time.Millisecond, MaxConns: 4096}
	return s, s.save()
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
	if err := store.Write(caTokenFile, []byte(hex.EncodeToString(keys.EnrolToken[:])+"\n"), 0o600); err != nil {
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

// ReadToken reads an enrol.token file.
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

// Do runs f on the CA core under its lock and sends what f returns: the
// way to revoke, request discharges or trace while serving.
func (s *CAServer) Do(f func(now time.Time, ca *auth.CA) (auth.Output, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	out, err := f(time.Now(), s.ca)
	s.dispatch(out)
	return err
}

func (s *CAServer) save() error {
	snap, err := s.ca.Snapshot(time.Now())
	if err != nil {
		return err
	}
	s.dirty = false
	return s.store.Write(caStateFile, snap, 0o600)
}

// Serve accepts connections on ln until ctx ends, then saves the state.
func (s *CAServer) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	go s.saver(ctx)
	var wg sync.WaitGroup
	defer func() {
		s.mu.Lock()
		for _, p := range s.peers {
			p.close()
		}
		s.mu.Unlock()
		wg.Wait()
		s.mu.Lock()
		if err := s.save(); err != nil {
			s.log.Error("saving state", "err", err)
		}
		s.mu.Unlock()
	}()
	for {
		c, err := accept(ctx, ln)
		if err != nil || c == nil {
			return err
		}
		s.mu.Lock()
		if len(s.peers) >= s.MaxConns {
			s.mu.Unlock()
			c.Close()
			continue
		}
		id := s.ca.Open()
		p := newPeer(c)
		s.peers[id] = p
		s.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(id, p)
		}()
	}
}

func (s *CAServer) saver(ctx context.Context) {
	t := time.NewTicker(s.SaveEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.mu.Lock()
			if s.dirty {
				if err := s.save(); err != nil {
					s.log.Error("saving state", "err", err)
				}
			}
			s.mu.Unlock()
		}
	}
}

func (s *CAServer) serveConn(id auth.ConnID, p *peer) {
	defer func() {
		s.mu.Lock()
		s.ca.Close(id)
		delete(s.peers, id)
		s.mu.Unlock()
		p.drainAndClose()
	}()
	for {
		_ = p.conn.SetReadDeadline(time.Now().Add(IdleTimeout))
		f, err := wire.ReadFrame(p.conn, maxLinkFrame)
		if err != nil {
			return
		}
		s.mu.Lock()
		out, err := s.ca.Receive(time.Now(), id, f)
		s.dispatch(out)
		s.mu.Unlock()
		if err != nil {
			s.log.Info("connection refused", "conn", id, "err", err)
			return
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
		switch e.Kind {
		case "bv-enrolled", "lag-enrolled", "permit", "revoked", "resumed", "clone":
			s.dirty = true
		}
		if s.onEvent != nil {
			s.onEvent(e)
		}
		s.log.Debug("ca event", "event", e.String())
	}
}
