package service

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"time"

	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/durable"
	"github.com/gridveil/gridveil/transport"
)

// SOConfig configures the system operator's coordination service.
type SOConfig struct {
	Operator charging.OperatorConfig
	// Members[g] are the pseudonyms of the vehicles that joined bus g of
	// Operator.Buses.
	Members [][]string
	Conn    *transport.Conn
	// Key signs every broadcast and drop notice (charging.SealBroadcast):
	// the vehicles follow only what carries the SO's signature.
	Key ed25519.PrivateKey
	// StateFile, if set, is where the SO saves its state after every round
	// and resumes from at start.
	StateFile string
	// Resend is how long a round may go without progress before its
	// broadcasts go out again (default 500 ms).
	Resend time.Duration
	// Linger is how long the final broadcast is repeated so that every
	// vehicle hears the end (default 4 resends).
	Linger time.Duration
	// DropAfter, if positive, drops the members still silent after this
	// many re-sends of one round in a row (Coordinator.Drop): their last
	// schedules stay as fixed loads and the others finish the day.
	DropAfter int
	// Pace is the least time between rounds (0: as fast as reports come).
	Pace time.Duration
	Log  *slog.Logger
	// Metrics, if set, counts the SO's work (NewMetrics).
	Metrics *Metrics
	// Progress, if set, is called after every completed iteration, and
	// again with the gap when a bound round certifies it.
	Progress func(charging.Stats)
	// Masking, if set, runs the coordination with masking: the vehicles
	// send masked reports (aggregate.MaskVehicle) and the SO recovers only
	// each bus's sum (aggregate.MaskAggregator); reports in the clear are
	// refused.
	Masking *MaskingConfig
}

// SOResult is what the SO ends the day with.
type SOResult struct {
	Coordinator *charging.Coordinator
	Resumed     bool // started from a saved state
	Refused     map[string]int
	Dropped     []charging.Dropped // members dropped for silence, and the round of the schedule kept for each
	Resent      int                // times a round went out again for lack of progress (the final round's repeats not counted)
}

// ErrStateFile is wrapped by errors about the SO's state file.
var ErrStateFile = errors.New("SO state file")

const stateMagic = "gridveil SO state v1\n"

// RunSO runs the SO's side of coordinated charging until the coordination
// is done or ctx ends.
func RunSO(ctx context.Context, cfg SOConfig) (*SOResult, error) {
	if cfg.Resend <= 0 {
		cfg.Resend = 500 * time.Millisecond
	}
	if cfg.Linger <= 0 {
		cfg.Linger = 4 * cfg.Resend
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("the SO needs its Ed25519 signing key (SOConfig.Key): vehicles follow only signed broadcasts")
	}
	op, err := charging.NewOperator(cfg.Operator)
	if err != nil {
		return nil, err
	}
	co, err := charging.NewCoordinator(op, cfg.Members)
	if err != nil {
		return nil, err
	}
	res := &SOResult{Coordinator: co, Refused: map[string]int{}}
	if cfg.StateFile != "" {
		st, ok, err := loadState(cfg.StateFile)
		if err != nil {
			return nil, err
		}
		if ok {
			if err := co.Restore(st); err != nil {
				return nil, fmt.Errorf("%w %s does not fit this scenario: %w; remove it to start the day again", ErrStateFile, cfg.StateFile, err)
			}
			res.Resumed = true
			log.Info("resumed from saved state", "file", cfg.StateFile, "round", st.Round, "iteration", op.Iteration(), "phase", st.Phase.String())
		}
	}
	busIndex := map[[2]int]int{}
	for g, b := range op.Buses() {
		busIndex[[2]int{b.Feeder, b.Bus}] = g
	}
	type msg struct {
		subject string
		data    []byte
	}
	in := make(chan msg, 4096)
	toIn := func(s string, d []byte) {
		select {
		case in <- msg{s, d}:
		case <-ctx.Done():
		}
	}
	unsub, err := cfg.Conn.Subscribe(transport.CoordReports(-1), "", toIn)
	if err != nil {
		return nil, err
	}
	defer unsub()
	if cfg.Masking != nil {
		for _, kind := range []string{"maskkey", "maskrep", "maskans"} {
			u, err := cfg.Conn.Subscribe(transport.MaskToSO(kind), "", toIn)
			if err != nil {
				return nil, err
			}
			defer u()
		}
	}
	hello := make(chan struct{}, 1)
	unsubHello, err := cfg.Conn.Subscribe(transport.CoordHello, "", func(string, []byte) {
		select {
		case hello <- struct{}{}:
		default: // one pending re-send covers every host that said hello meanwhile
		}
	})
	if err != nil {
		return nil, err
	}
	defer unsubHello()
	if err := cfg.Conn.Flush(ctx); err != nil {
		return nil, err
	}

	met := cfg.Metrics
	if met == nil {
		met = NewMetrics("so", nil)
	}
	refuse := func(subject, reason string, err error) {
		res.Refused[reason]++
		met.Refused.WithLabelValues(reason).Inc()
		log.Warn("refused message", "subject", subject, "reason", reason, "err", err)
	}
	var sm *soMasking
	if cfg.Masking != nil {
		file := ""
		if cfg.StateFile != "" {
			file = cfg.StateFile + ".maskkeys"
		}
		late := func(subject string, err error) {
			res.Refused["stale"]++
			met.Refused.WithLabelValues("stale").Inc()
			log.Debug("late copy", "subject", subject, "err", err)
		}
		if sm, err = newSOMasking(*cfg.Masking, co, cfg.Conn, cfg.Key, log, file, refuse, late); err != nil {
			return nil, err
		}
	}
	roundStart := time.Now()
	progressed := false // a round completed since the last resend tick
	// lastRound is how long the last complete round took. A round is
	// re-sent only once it has run four times that (and at least Resend):
	// at 10^5 vehicles a round takes longer than the default Resend, and
	// re-sending it would make every vehicle answer twice.
	var lastRound time.Duration
	countedIter := op.Iteration() // a resumed SO counts from where it resumed
	publish := func() error {
		for g, b := range op.Buses() {
			bc := co.Broadcast(g)
			data, err := charging.SealBroadcast(&bc, cfg.Key)
			if err != nil {
				return err
			}
			if err := cfg.Conn.Publish(transport.CoordBroadcast(b.Feeder, b.Bus), data); err != nil {
				// The connection is down: the resend timer tries again.
				log.Warn("broadcast not sent", "round", co.Round(), "err", err)
				return nil
			}
		}
		return nil
	}
	// advance moves a complete round on: the state saved before the next
	// round goes out, so a restart never loses a round it announced.
	advance := func() error {
		if !co.Ready() {
			return nil
		}
		st, completed, err := co.Advance()
		if err != nil {
			return err
		}
		progressed = true
		met.Rounds.Inc()
		lastRound = time.Since(roundStart)
		met.RoundTime.Observe(lastRound.Seconds())
		if cfg.StateFile != "" {
			if err := saveState(cfg.StateFile, co.State()); err != nil {
				return err
			}
		}
		if completed {
			// A bound round reports the same iteration again, with its gap.
			if st.Iter > countedIter {
				met.Iterations.Add(float64(st.Iter - countedIter))
				countedIter = st.Iter
			}
			if g := op.Gap(); !math.IsNaN(g) {
				met.Gap.Set(g)
			}
			publishProgress(cfg.Conn, log, co, st)
			if cfg.Progress != nil {
				cfg.Progress(st)
			}
		}
		if cfg.Pace > 0 {
			select {
			case <-time.After(cfg.Pace):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		roundStart = time.Now()
		return publish()
	}
	stalls := 0
	drop := func() error {
		silent := co.Silent()
		for g := range op.Buses() {
			for _, id := range silent[g] {
				if err := co.Drop(g, id); err != nil {
					return err
				}
				b := op.Buses()[g]
				n := co.DropNotice(g, id)
				res.Dropped = append(res.Dropped, n)
				met.Dropped.Inc()
				log.Warn("dropped a silent vehicle; its last schedule stays as a fixed load", "feeder", b.Feeder, "bus", b.Bus, "sender", id, "kept_round", n.Kept, "round", co.Round())
				data, err := charging.SealDropped(&n, cfg.Key)
				if err != nil {
					return err
				}
				if err := cfg.Conn.Publish(transport.CoordDropped(b.Feeder, b.Bus), data); err != nil {
					log.Warn("drop notice not sent", "err", err)
				}
			}
		}
		if cfg.StateFile != "" {
			return saveState(cfg.StateFile, co.State())
		}
		return nil
	}
	// maskDrop drops, for good, the members the open masking phases still
	// wait for (masking's counterpart of drop): their charge points stop,
	// and the survivors' dropout recovery unmasks the rest.
	maskDrop := func() error {
		for g := range op.Buses() {
			ids, err := sm.leave(g)
			if err != nil {
				return err
			}
			for _, id := range ids {
				if err := co.Drop(g, id); err != nil {
					return err
				}
				b := op.Buses()[g]
				n := co.DropNotice(g, id)
				res.Dropped = append(res.Dropped, n)
				met.Dropped.Inc()
				log.Warn("dropped a silent vehicle; with masking its charge point stops (the SO never knew its schedule) and the others' masks with it are revealed each round", "feeder", b.Feeder, "bus", b.Bus, "sender", id, "round", co.Round())
				data, err := charging.SealDropped(&n, cfg.Key)
				if err != nil {
					return err
				}
				if err := cfg.Conn.Publish(transport.CoordDropped(b.Feeder, b.Bus), data); err != nil {
					log.Warn("drop notice not sent", "err", err)
				}
			}
		}
		if cfg.StateFile != "" {
			return saveState(cfg.StateFile, co.State())
		}
		return nil
	}
	// maskAdvance advances, and with members gone settles the buses that
	// wait for nobody (or have nobody left) in the new round, until no
	// round completes.
	maskAdvance := func() error {
		for {
			if err := advance(); err != nil {
				return err
			}
			if sm.left == 0 {
				return nil
			}
			ok, err := sm.settle()
			if err != nil {
				return err
			}
			if !ok || !co.Ready() {
				return nil
			}
		}
	}
	if err := publish(); err != nil {
		return nil, err
	}
	timer := time.NewTicker(cfg.Resend)
	defer timer.Stop()
	var lingerEnd time.Time
	for {
		if co.Phase() == charging.PhaseDone {
			if lingerEnd.IsZero() {
				lingerEnd = time.Now().Add(cfg.Linger)
			}
			if !time.Now().Before(lingerEnd) {
				_ = cfg.Conn.Flush(ctx)
				return res, nil
			}
		}
		var lingerC <-chan time.Time
		if !lingerEnd.IsZero() {
			lingerC = time.After(time.Until(lingerEnd))
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-lingerC:
			continue // the end of the linger, handled above
		case <-timer.C:
			if progressed {
				stalls = 0
			}
			if !progressed && co.Phase() != charging.PhaseDone && time.Since(roundStart) < 4*lastRound {
				continue // a slow round, not a lost one
			}
			if !progressed || co.Phase() == charging.PhaseDone {
				if co.Phase() != charging.PhaseDone {
					stalls++
					if cfg.DropAfter > 0 && stalls > cfg.DropAfter && sm != nil {
						// With masking, the silent are those the open
						// masking phase of their bus waits for.
						if err := maskDrop(); err != nil {
							return res, err
						}
						stalls = 0
						if err := maskAdvance(); err != nil {
							return res, err
						}
						continue
					}
					if cfg.DropAfter > 0 && stalls > cfg.DropAfter {
						// Silent for DropAfter re-sends in a row: their
						// processes are gone. The others finish the day.
						if err := drop(); err != nil {
							return res, err
						}
						stalls = 0
						if err := advance(); err != nil {
							return res, err
						}
						continue
					}
					res.Resent++
					met.Resent.Inc()
					log.Info("round re-sent", "round", co.Round(), "phase", co.Phase().String(), "missing", co.Missing())
				}
				if err := publish(); err != nil {
					return res, err
				}
				if sm != nil && co.Phase() != charging.PhaseDone {
					if err := sm.resend(); err != nil {
						return res, err
					}
				}
			}
			progressed = false
		case <-hello:
			if err := publish(); err != nil {
				return res, err
			}
			if sm != nil {
				if err := sm.resend(); err != nil {
					return res, err
				}
			}
		case m := <-in:
			f, b, kind, err := transport.ParseCoord(m.subject)
			if err != nil {
				refuse(m.subject, "subject", err)
				continue
			}
			g, ok := busIndex[[2]int{f, b}]
			if !ok {
				refuse(m.subject, "no such bus", fmt.Errorf("feeder %d bus %d hosts no vehicles", f, b))
				continue
			}
			if sm != nil {
				var summed bool
				switch kind {
				case "maskkey":
					err = sm.onKey(m.subject, g, m.data)
					progressed = true // collecting keys is progress
				case "maskrep":
					summed, err = sm.onReport(m.subject, g, m.data)
				case "maskans":
					summed, err = sm.onAnswer(m.subject, g, m.data)
				default:
					refuse(m.subject, "report in clear", errors.New("the coordination runs with masking: reports in the clear are refused"))
					continue
				}
				if err != nil {
					return res, err
				}
				if summed {
					if err := maskAdvance(); err != nil {
						return res, err
					}
				}
				continue
			}
			var r charging.Report
			if err := r.UnmarshalBinary(m.data); err != nil {
				refuse(m.subject, "malformed", err)
				continue
			}
			if err := co.Handle(g, &r); err != nil {
				switch {
				case errors.Is(err, charging.ErrStaleReport):
					// Late copies after a resend are normal: not worth a warning.
					res.Refused["stale"]++
					met.Refused.WithLabelValues("stale").Inc()
					log.Debug("stale report", "subject", m.subject, "err", err)
				case errors.Is(err, charging.ErrUnknownSender):
					refuse(m.subject, "unknown sender", err)
				case errors.Is(err, charging.ErrDropped):
					refuse(m.subject, "dropped", err)
				default:
					refuse(m.subject, "bad report", err)
				}
				continue
			}
			if err := advance(); err != nil {
				return res, err
			}
		}
	}
}

// saveState writes the state durably (package durable): a crash leaves
// either the old state or the new, never a torn one.
func saveState(path string, st charging.CoordinatorState) error {
	var buf bytes.Buffer
	buf.WriteString(stateMagic)
	if err := gob.NewEncoder(&buf).Encode(st); err != nil {
		return fmt.Errorf("%w: encoding: %w", ErrStateFile, err)
	}
	if err := durable.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("%w: %w", ErrStateFile, err)
	}
	return nil
}

func loadState(path string) (charging.CoordinatorState, bool, error) {
	var st charging.CoordinatorState
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, false, nil
	}
	if err != nil {
		return st, false, fmt.Errorf("%w %s: %w", ErrStateFile, path, err)
	}
	if !bytes.HasPrefix(data, []byte(stateMagic)) {
		return st, false, fmt.Errorf("%w %s is not an SO state file; remove it or choose another --state", ErrStateFile, path)
	}
	if err := gob.NewDecoder(bytes.NewReader(data[len(stateMagic):])).Decode(&st); err != nil {
		return st, false, fmt.Errorf("%w %s is damaged (%w); remove it to start the day again", ErrStateFile, path, err)
	}
	return st, true, nil
}

// Progress is what the SO publishes on transport.CoordProgress after each
// completed iteration. An iteration that a bound round certifies is
// published twice: when it steps, and again with its gap (and converged
// when the gap is within tolerance); the second replaces the first.
type Progress struct {
	Schema    string    `json:"schema"` // gridveil/coord-progress/v1
	Iter      int       `json:"iteration"`
	Round     int       `json:"round"`
	Objective float64   `json:"objective"`
	Change    float64   `json:"change_kw"`
	Violation float64   `json:"violation_pu"`
	Gap       *float64  `json:"relative_gap"` // null when not certified this iteration
	Converged bool      `json:"converged"`
	Aggregate []float64 `json:"so_view_aggregate_kw"`
}

func publishProgress(conn *transport.Conn, log *slog.Logger, co *charging.Coordinator, st charging.Stats) {
	op := co.Operator()
	p := Progress{Schema: "gridveil/coord-progress/v1", Iter: st.Iter, Round: co.Round(), Objective: st.Objective, Change: st.Change,
		Violation: st.Violation, Converged: op.Converged(), Aggregate: op.Aggregate()}
	if !math.IsNaN(st.Gap) {
		g := st.Gap
		p.Gap = &g
	}
	data, err := json.Marshal(p)
	if err != nil {
		log.Error("encoding progress", "err", err)
		return
	}
	if err := conn.Publish(transport.CoordProgress, data); err != nil {
		log.Debug("progress not published", "err", err)
	}
}
