package authnet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/gridveil/gridveil/auth"
	"github.com/gridveil/gridveil/auth/wire"
)

// Vehicle is a battery vehicle's credentials stored in a data directory.
type Vehicle struct {
	BV    *auth.BV
	store *Store
	file  string
	// KeepaliveEvery is how often a connected session sends a keepalive,
	// so that a vehicle that charges for hours without a word stays
	// connected; default KeepaliveEvery (the LAG drops a connection idle
	// for IdleTimeout).
	KeepaliveEvery time.Duration
	// RefreshFrom, when set, is the CA's address, for Connect to refresh
	// an outdated group list (auth.ErrStaleRing) and retry: an enrolled
	// vehicle refills without a credential.
	RefreshFrom string
}

// OpenVehicle loads a vehicle's state, or creates a vehicle with fresh
// keys; it does not enrol (see Enrol).
func OpenVehicle(store *Store, realID, group string, ca auth.CAPublic) (*Vehicle, error) {
	file := realID + ".json"
	b, err := store.Read(file)
	switch {
	case err == nil:
		bv, err := auth.ParseBV(b)
		if err != nil {
			return nil, err
		}
		if bv.RealID != realID || bv.Group != group {
			return nil, fmt.Errorf("%s holds vehicle %q of group %q", file, bv.RealID, bv.Group)
		}
		return &Vehicle{BV: bv, store: store, file: file}, nil
	case isNotExist(err):
		bv, err := auth.NewBV(realID, group, ca)
		if err != nil {
			return nil, err
		}
		v := &Vehicle{BV: bv, store: store, file: file}
		return v, v.Save()
	default:
		return nil, err
	}
}

// Save writes the vehicle's state.
func (v *Vehicle) Save() error {
	b, err := v.BV.Marshal()
	if err != nil {
		return err
	}
	return v.store.Write(v.file, b, 0o600)
}

// Enrol enrols the vehicle (or refills it) with n new pseudonyms and a
// fresh copy of its group's key list, then saves it. A first enrolment
// presents cred, the vehicle's enrolment credential (gridveil ca issue
// vehicle NAME); a refill needs none (zeros): the CA knows the vehicle's
// identity key.
func (v *Vehicle) Enrol(ctx context.Context, caAddr string, cred [32]byte, n int) error {
	if cred == ([32]byte{}) && !v.BV.Enrolled() {
		return fmt.Errorf("%s is not enrolled and has no enrolment credential: %w", v.BV.RealID, ErrNoCredential)
	}
	e, first, err := v.BV.Enrol(cred, n)
	if err != nil {
		return err
	}
	if err := RunEnrolment(ctx, caAddr, e, first); err != nil {
		return fmt.Errorf("enrolling %s: %w", v.BV.RealID, err)
	}
	return v.Save()
}

// Session is a vehicle's session with a LAG over TCP. Its methods run on
// the caller's goroutine: frames are read only while waiting.
type Session struct {
	V    *Vehicle
	S    *auth.BVSession
	conn net.Conn
	wmu  sync.Mutex // writes: the caller's frames and the keepalives
	stop chan struct{}
	once sync.Once
}

// Connect dials a LAG and authenticates. It saves the vehicle's state
// afterwards whatever happened, since a pseudonym offered once is spent. A
// refused resumption (the ticket is spent either way) is followed by one
// full authentication. A ring refused as holding a revoked member
// (auth.ErrStaleRing: the vehicle's group list is outdated) is followed by
// a refresh of the list from the CA at RefreshFrom and one more attempt;
// if the CA refuses the refresh, that is the error (auth.ErrRevoked for a
// vehicle that is itself revoked).
func (v *Vehicle) Connect(ctx context.Context, lagAddr string, opts auth.SessionOptions) (*Session, error) {
	s, err := v.connect(ctx, lagAddr, opts)
	if err != nil && s != nil && s.S.Resuming() {
		s, err = v.connect(ctx, lagAddr, opts)
	}
	if errors.Is(err, auth.ErrStaleRing) {
		if v.RefreshFrom == "" {
			return nil, fmt.Errorf("%w; refresh it (gridveil agent bv enrol -n 0) and connect again", err)
		}
		if rerr := v.Enrol(ctx, v.RefreshFrom, [32]byte{}, 0); rerr != nil {
			return nil, fmt.Errorf("the LAG refused an outdated group list, and refreshing it failed: %w", rerr)
		}
		s, err = v.connect(ctx, lagAddr, opts)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (v *Vehicle) connect(ctx context.Context, lagAddr string, opts auth.SessionOptions) (*Session, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", lagAddr)
	if err != nil {
		return nil, err
	}
	s := &Session{V: v, S: v.BV.NewSession(opts), conn: c, stop: make(chan struct{})}
	err = s.WaitFor(ctx, func(bs *auth.BVSession) bool { return bs.State() >= auth.BVCharging })
	if serr := v.Save(); err == nil {
		err = serr
	}
	if err != nil {
		c.Close()
		return s, err
	}
	go s.keepalive(cmp.Or(v.KeepaliveEvery, KeepaliveEvery))
	return s, nil
}

// keepalive sends a keepalive every period until the session closes.
func (s *Session) keepalive(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.wmu.Lock()
			_ = s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			err := wire.WriteFrame(s.conn, keepaliveFrame)
			s.wmu.Unlock()
			if err != nil {
				return
			}
		}
	}
}

// Send writes a frame the vehicle produced.
func (s *Session) Send(frame []byte, err error) error {
	if err != nil {
		return err
	}
	if frame == nil {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	return wire.WriteFrame(s.conn, frame)
}

// ErrClosed is returned when the LAG closed the connection.
var ErrClosed = errors.New("connection closed by the LAG")

// WaitFor reads and processes frames until cond holds, the context ends
// (its deadline bounds each read) or the session fails.
func (s *Session) WaitFor(ctx context.Context, cond func(*auth.BVSession) bool) error {
	stop := context.AfterFunc(ctx, func() { _ = s.conn.SetReadDeadline(time.Now()) })
	defer stop()
	for !cond(s.S) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		f, err := wire.ReadFrame(s.conn, maxVehicleFrame)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("waiting for the LAG: %w", ctx.Err())
			}
			return fmt.Errorf("%w: %w", ErrClosed, err)
		}
		if isKeepalive(f) {
			continue
		}
		out, err := s.S.Receive(time.Now(), f)
		if err != nil {
			return err
		}
		for _, o := range out {
			if err := s.Send(o, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close says goodbye and closes the connection.
func (s *Session) Close() error {
	s.once.Do(func() { close(s.stop) })
	err := s.Send(s.S.Bye())
	s.conn.Close()
	if serr := s.V.Save(); err == nil {
		err = serr
	}
	return err
}

// CycleOptions shape one vehicle's charge, full, discharge, charge cycle.
type CycleOptions struct {
	Session auth.SessionOptions
	// EnergyWh is what the vehicle charged before it reports full, and
	// what it gives back while discharging.
	EnergyWh int32
	// Wait bounds each step; default 10 s.
	Wait time.Duration
	// Hold keeps the session open this long after the cycle (or until ctx
	// ends), so that a charging station can be shown its token meanwhile.
	Hold time.Duration
	// Held, if set, is called with the session's station token (the OCPP
	// idToken, auth.StationToken) when the hold begins.
	Held func(auth.StationToken)
}

// CycleReport is what a vehicle went through and learned.
type CycleReport struct {
	RealID string
	States []auth.BVState
	View   auth.BVView
	// StationToken is the session's token for charging stations, valid
	// while the session lasted.
	StationToken auth.StationToken
}

// RunCycle connects a vehicle to a LAG and takes it through seed 002's
// battery states: authenticated and charging, fully charged (a sealed
// status), the CA's discharge request answered (discharging if it agreed),
// back to charging (a sealed status), then it leaves.
func (v *Vehicle) RunCycle(ctx context.Context, lagAddr string, o CycleOptions) (*CycleReport, error) {
	if o.Wait == 0 {
		o.Wait = 10 * time.Second
	}
	rep := &CycleReport{RealID: v.BV.RealID}
	step := func(cond func(*auth.BVSession) bool, s *Session) error {
		c, cancel := context.WithTimeout(ctx, o.Wait)
		defer cancel()
		return s.WaitFor(c, cond)
	}
	c, cancel := context.WithTimeout(ctx, o.Wait)
	s, err := v.Connect(c, lagAddr, o.Session)
	cancel()
	if err != nil {
		return rep, fmt.Errorf("authenticating: %w", err)
	}
	defer s.Close()
	rep.States = append(rep.States, s.S.State())
	if rep.StationToken, err = s.S.StationToken(); err != nil {
		return rep, err
	}
	// The LAG confirms gathered vehicles in batches; wait for ours.
	if err := step(func(bs *auth.BVSession) bool { return bs.View().BatchConfirmed }, s); err != nil {
		return rep, fmt.Errorf("waiting for the batch confirmation: %w", err)
	}
	if err := s.Send(s.S.ReportStatus(auth.StatusFullyCharged, auth.Battery{SOCPermille: 1000, EnergyWh: o.EnergyWh})); err != nil {
		return rep, err
	}
	rep.States = append(rep.States, s.S.State())
	if err := step(func(bs *auth.BVSession) bool { return bs.View().StatusReplies >= 1 }, s); err != nil {
		return rep, fmt.Errorf("waiting for the CA's status reply: %w", err)
	}
	if o.Session.Role == auth.RoleStorage || o.Session.Role == auth.RoleSupply {
		// A request that came while the vehicle was charging got a
		// Decline; now that it is full it changes its mind.
		frames, err := s.S.ReviseAnswers(time.Now())
		if err != nil {
			return rep, err
		}
		for _, f := range frames {
			if err := s.Send(f, nil); err != nil {
				return rep, err
			}
		}
		done := func(bs *auth.BVSession) bool {
			if o.Session.WillDischarge {
				return bs.State() == auth.BVDischarging
			}
			return len(bs.View().Acks) >= 1
		}
		if err := step(done, s); err != nil {
			return rep, fmt.Errorf("waiting for a discharge request: %w", err)
		}
		if s.S.State() == auth.BVDischarging {
			rep.States = append(rep.States, s.S.State())
			if err := s.Send(s.S.ReportStatus(auth.StatusStopDischarg, auth.Battery{SOCPermille: 700, EnergyWh: -o.EnergyWh / 4})); err != nil {
				return rep, err
			}
			if err := step(func(bs *auth.BVSession) bool { return bs.State() == auth.BVCharging }, s); err != nil {
				return rep, fmt.Errorf("waiting to leave discharging: %w", err)
			}
			rep.States = append(rep.States, s.S.State())
		}
	}
	rep.View = s.S.View()
	if o.Hold > 0 {
		if o.Held != nil {
			o.Held(rep.StationToken)
		}
		// Keep reading (keepalives, the LAG's frames) while held; the
		// session ends when Hold passes or ctx ends, not as an error.
		c, cancel := context.WithTimeout(ctx, o.Hold)
		err := s.WaitFor(c, func(bs *auth.BVSession) bool { return bs.State() == auth.BVClosed })
		cancel()
		if err != nil && c.Err() == nil {
			return rep, fmt.Errorf("holding the session: %w", err)
		}
		rep.View = s.S.View()
	}
	return rep, nil
}
