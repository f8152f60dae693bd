package service

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"

	"github.com/gridveil/gridveil/aggregate"
	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/transport"
)

// EVHostConfig configures a process that hosts many vehicles.
type EVHostConfig struct {
	Slots int
	DT    float64
	// EVs are the hosted vehicles' local sets; each vehicle sees only its
	// own. Senders[i] is EV i's session pseudonym on the bus.
	EVs     []charging.EV
	Senders []string
	Conn    *transport.Conn
	// SOKey is the SO's public key: broadcasts and drop notices without
	// its signature are refused as forged.
	SOKey   ed25519.PublicKey
	Log     *slog.Logger
	Metrics *Metrics // optional
	Name    string   // for the SO's logs
	// OnBroadcast, if set, sees every broadcast's round before the
	// vehicles answer it (fault injection in the crash tests).
	OnBroadcast func(round int)
	// Masking, if true, masks every report (aggregate.MaskVehicle, one
	// per hosted vehicle, keys from crypto/rand) and answers the SO's
	// masking requests: nothing a vehicle reports reaches the SO in clear.
	Masking bool
}

// EVHostResult is what the hosted vehicles ended with.
type EVHostResult struct {
	Schedules [][]float64 // per hosted EV, kW per slot
	Answered  int         // reports sent (re-sends included)
	Ignored   int         // broadcasts dropped as malformed or not for a hosted bus
	Dropped   []string    // hosted vehicles the SO dropped for silence
	Forged    int         // broadcasts refused for a missing or wrong signature
}

// RunEVHost answers the SO's broadcasts for every hosted vehicle until
// each has seen the end of the coordination or ctx ends.
func RunEVHost(ctx context.Context, cfg EVHostConfig) (*EVHostResult, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(cfg.SOKey) != ed25519.PublicKeySize {
		return nil, errors.New("an EV host needs the SO's public key (EVHostConfig.SOKey) to tell its broadcasts from forgeries")
	}
	if len(cfg.Senders) != len(cfg.EVs) {
		return nil, fmt.Errorf("%d vehicles but %d pseudonyms", len(cfg.EVs), len(cfg.Senders))
	}
	vs := make([]charging.Vehicle, len(cfg.EVs))
	byBus := map[[2]int][]int{}
	for i := range cfg.EVs {
		vs[i] = charging.NewVehicle(&cfg.EVs[i], cfg.Slots, cfg.DT, nil)
		k := [2]int{cfg.EVs[i].Feeder, cfg.EVs[i].Bus}
		byBus[k] = append(byBus[k], i)
	}
	type msg struct {
		subject string
		data    []byte
	}
	in := make(chan msg, 1024)
	var unsubs []func() error
	defer func() {
		for _, u := range unsubs {
			_ = u()
		}
	}()
	reportSubject := map[[2]int]string{}
	dropped := make(chan []byte, 64)
	met := cfg.Metrics
	if met == nil {
		met = NewMetrics("ev", nil)
	}
	res := &EVHostResult{}
	refuse := func(subject, reason string, err error) {
		res.Ignored++
		if reason == "forged" {
			res.Forged++
		}
		met.Refused.WithLabelValues(reason).Inc()
		log.Warn("refused message", "subject", subject, "reason", reason, "err", err)
	}
	var hm *hostMasking
	maskIn := make(chan msg, 1024)
	if cfg.Masking {
		var err error
		if hm, err = newHostMasking(&cfg, refuse, log); err != nil {
			return nil, err
		}
	}
	for k := range byBus {
		reportSubject[k] = transport.CoordReport(k[0], k[1])
		if hm != nil {
			reportSubject[k] = transport.MaskReport(k[0], k[1])
			for _, sub := range []string{transport.MaskKeys(k[0], k[1]), transport.MaskRequest(k[0], k[1])} {
				u, err := cfg.Conn.Subscribe(sub, "", func(s string, d []byte) {
					select {
					case maskIn <- msg{s, d}:
					case <-ctx.Done():
					}
				})
				if err != nil {
					return nil, err
				}
				unsubs = append(unsubs, u)
			}
		}
		u, err := cfg.Conn.Subscribe(transport.CoordDropped(k[0], k[1]), "", func(_ string, d []byte) {
			select {
			case dropped <- d:
			case <-ctx.Done():
			}
		})
		if err != nil {
			return nil, err
		}
		unsubs = append(unsubs, u)
		u, err = cfg.Conn.Subscribe(transport.CoordBroadcast(k[0], k[1]), "", func(s string, d []byte) {
			select {
			case in <- msg{s, d}:
			case <-ctx.Done():
			}
		})
		if err != nil {
			return nil, err
		}
		unsubs = append(unsubs, u)
	}
	if err := cfg.Conn.Flush(ctx); err != nil {
		return nil, err
	}
	// Subscribed: ask the SO for the current round rather than wait for
	// its resend timer.
	if err := cfg.Conn.Publish(transport.CoordHello, []byte(cfg.Name)); err != nil {
		log.Warn("hello not sent; the SO's resend timer will reach us", "err", err)
	}
	bySender := make(map[string]int, len(cfg.Senders))
	for i, id := range cfg.Senders {
		bySender[id] = i
	}
	scratch, idx := make([]float64, cfg.Slots), make([]int, cfg.Slots)
	left := len(vs)
	pending := map[[2]int]msg{} // masking: a bus's broadcast that came before its key list
	// broadcast has the hosted vehicles of the broadcast's bus answer it.
	broadcast := func(m msg) error {
		b, err := charging.OpenBroadcast(m.data, cfg.SOKey)
		if err != nil {
			reason := "malformed"
			if errors.Is(err, charging.ErrForged) {
				reason = "forged"
			}
			refuse(m.subject, reason, err)
			return nil
		}
		if cfg.OnBroadcast != nil {
			cfg.OnBroadcast(b.Round)
		}
		f, bus, _, err := transport.ParseCoord(m.subject)
		if err != nil || f != b.Feeder || bus != b.Bus {
			refuse(m.subject, "wrong bus", errors.New("broadcast names another bus"))
			return nil
		}
		k := [2]int{f, bus}
		if hm != nil && b.Phase != charging.PhaseDone && !hm.ready(byBus[k]) {
			// No key list yet: (re)announce the keys and answer once it
			// comes.
			hm.announce(k, byBus[k])
			pending[k] = m
			return nil
		}
		var masked []aggregate.MaskedReport // masking: the bus's reports, sent as one batch
		for _, i := range byBus[k] {
			wasDone := vs[i].Done()
			r, ok := vs[i].Answer(&b, cfg.Senders[i], scratch, idx)
			if !wasDone && vs[i].Done() {
				left--
			}
			if !ok {
				continue
			}
			if hm != nil {
				mr, err := hm.report(i, &r, cfg.Slots)
				if err != nil {
					return fmt.Errorf("vehicle %s: %w", cfg.Senders[i], err)
				}
				masked = append(masked, *mr)
				continue
			}
			data, err := r.MarshalBinary()
			if err != nil {
				return fmt.Errorf("vehicle %s: %w", cfg.Senders[i], err)
			}
			if err := cfg.Conn.Publish(reportSubject[k], data); err != nil {
				log.Warn("report not sent; the SO will ask again", "err", err)
				continue
			}
			res.Answered++
			met.Reports.Inc()
		}
		if len(masked) > 0 {
			sent, err := hm.sendReports(k, b.Round, masked)
			if err != nil {
				return err
			}
			if sent {
				res.Answered += len(masked)
				met.Reports.Add(float64(len(masked)))
			}
		}
		return nil
	}
	for left > 0 {
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case mm := <-maskIn:
			f, bus, kind, err := transport.ParseCoord(mm.subject)
			if err != nil {
				refuse(mm.subject, "subject", err)
				continue
			}
			if kind == "maskreq" {
				hm.onRequest(mm.subject, mm.data)
				continue
			}
			k := [2]int{f, bus}
			hm.onKeys(mm.subject, k, byBus[k], mm.data)
			if p, ok := pending[k]; ok && hm.ready(byBus[k]) {
				delete(pending, k)
				if err := broadcast(p); err != nil {
					return res, err
				}
			}
		case d := <-dropped:
			n, err := charging.OpenDropped(d, cfg.SOKey)
			if err != nil {
				reason := "malformed"
				if errors.Is(err, charging.ErrForged) {
					reason = "forged"
				}
				res.Ignored++
				met.Refused.WithLabelValues(reason).Inc()
				log.Warn("refused message", "reason", reason+" drop notice", "err", err)
				continue
			}
			i, ok := bySender[n.Sender]
			if !ok || vs[i].Done() || cfg.EVs[i].Feeder != n.Feeder || cfg.EVs[i].Bus != n.Bus {
				continue
			}
			if err := vs[i].Freeze(n.Kept); err != nil {
				return res, fmt.Errorf("vehicle %s: %w", n.Sender, err)
			}
			left--
			res.Dropped = append(res.Dropped, n.Sender)
			log.Warn("the SO dropped a vehicle of this host; it keeps the schedule the SO counted", "sender", n.Sender, "kept_round", n.Kept)
		case m := <-in:
			if err := broadcast(m); err != nil {
				return res, err
			}
		}
	}
	_ = cfg.Conn.Flush(ctx)
	for i := range vs {
		res.Schedules = append(res.Schedules, append([]float64(nil), vs[i].Schedule()...))
	}
	return res, nil
}
