package service

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/gob"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"

	"github.com/gridveil/gridveil/aggregate"
	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/durable"
	"github.com/gridveil/gridveil/transport"
)

// MaskingConfig switches the coordination to masking over the network
// (docs/PLATFORM.md "Masking over the network"): the vehicles send masked
// reports and the SO recovers only each bus's sum.
type MaskingConfig struct {
	// Threshold is how many of a bus's vehicles it takes to unmask it (0:
	// a majority).
	Threshold int
	// SingleMask leaves out the self-masks (aggregate.MaskingConfig).
	SingleMask bool
}

// soMasking is the SO's shell around one MaskAggregator per bus: it moves
// their messages over NATS and hands each recovered sum to the
// coordinator.
type soMasking struct {
	cfg     MaskingConfig
	co      *charging.Coordinator
	conn    *transport.Conn
	key     ed25519.PrivateKey
	log     *slog.Logger
	refuse  func(subject, reason string, err error)
	late    func(subject string, err error) // a late copy of the current round's message
	file    string                          // where the key lists are kept across restarts
	aggs    []*aggregate.MaskAggregator
	index   []map[string]int          // per bus: sender -> member index
	reqs    [][]aggregate.MaskRequest // per bus: the open phase's requests, for re-sends
	hostOf  []map[int]string          // per bus: member index -> the host whose batch first carried it
	relayed []int                     // per bus: the round its key list last went out in (-1: never)
	sums    int                       // bus sums recovered
	left    int                       // members that left for good
}

// maskKeysMagic starts the file of key lists.
const maskKeysMagic = "gridveil SO masking keys v1\n"

func newSOMasking(cfg MaskingConfig, co *charging.Coordinator, conn *transport.Conn, key ed25519.PrivateKey, log *slog.Logger, file string, refuse func(string, string, error), late func(string, error)) (*soMasking, error) {
	m := &soMasking{cfg: cfg, co: co, conn: conn, key: key, log: log, refuse: refuse, late: late, file: file}
	op := co.Operator()
	for g, b := range op.Buses() {
		a, err := aggregate.NewMaskAggregator(b.Feeder, b.Bus, b.Vehicles, cfg.Threshold, op.T, cfg.SingleMask)
		if err != nil {
			return nil, fmt.Errorf("masking at feeder %d bus %d: %w: lower --mask-threshold, or use 0 for a majority of each bus", b.Feeder, b.Bus, err)
		}
		m.aggs = append(m.aggs, a)
		idx := map[string]int{}
		for k, id := range co.Members(g) {
			idx[id] = k
		}
		m.index = append(m.index, idx)
	}
	m.reqs = make([][]aggregate.MaskRequest, len(m.aggs))
	m.hostOf = make([]map[int]string, len(m.aggs))
	for g := range m.hostOf {
		m.hostOf[g] = map[int]string{}
	}
	m.relayed = make([]int, len(m.aggs))
	for g := range m.relayed {
		m.relayed[g] = -1
	}
	if file != "" {
		if err := m.load(); err != nil {
			return nil, err
		}
	}
	// A resumed SO's dropped members stay gone.
	for g, ids := range co.Dropped() {
		for _, id := range ids {
			if err := m.aggs[g].Leave(m.index[g][id]); err != nil {
				return nil, err
			}
			m.left++
		}
	}
	return m, nil
}

// load takes the key lists a previous run of the SO saved: the vehicles
// keep theirs, so a restarted SO must relay and expect the same.
func (m *soMasking) load() error {
	data, err := os.ReadFile(m.file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w %s: %w", ErrStateFile, m.file, err)
	}
	var keys [][][]byte
	if !bytes.HasPrefix(data, []byte(maskKeysMagic)) || gob.NewDecoder(bytes.NewReader(data[len(maskKeysMagic):])).Decode(&keys) != nil || len(keys) != len(m.aggs) {
		return fmt.Errorf("%w %s is not this day's masking key lists; remove it and the state file beside it to start the day again", ErrStateFile, m.file)
	}
	for g, list := range keys {
		b := m.co.Operator().Buses()[g]
		for k, pk := range list {
			if pk == nil {
				continue
			}
			if err := m.aggs[g].SetKey(k, &aggregate.MaskKey{Feeder: b.Feeder, Bus: b.Bus, Sender: "saved", PublicKey: pk}); err != nil {
				return fmt.Errorf("%w %s: %w", ErrStateFile, m.file, err)
			}
		}
	}
	return nil
}

// save keeps the key lists on disk (durable) before they are relayed.
func (m *soMasking) save() error {
	if m.file == "" {
		return nil
	}
	keys := make([][][]byte, len(m.aggs))
	for g, a := range m.aggs {
		if l, ok := a.Keys(); ok {
			keys[g] = l.Keys
		}
	}
	var buf bytes.Buffer
	buf.WriteString(maskKeysMagic)
	if err := gob.NewEncoder(&buf).Encode(keys); err != nil {
		return err
	}
	return durable.WriteFile(m.file, buf.Bytes(), 0o600)
}

// publishKeys relays bus g's signed key list, if complete.
func (m *soMasking) publishKeys(g int) error {
	l, ok := m.aggs[g].Keys()
	if !ok {
		return nil
	}
	data, err := aggregate.SealMaskKeys(l, m.key)
	if err != nil {
		return err
	}
	m.relayed[g] = m.co.Round()
	if err := m.conn.Publish(transport.MaskKeys(l.Feeder, l.Bus), data); err != nil {
		m.log.Warn("key list not sent; sent again on the next re-send", "feeder", l.Feeder, "bus", l.Bus, "err", err)
	}
	return nil
}

// resend publishes again what the open phases wait for: key lists and
// every bus's open requests.
func (m *soMasking) resend() error {
	for g := range m.aggs {
		if err := m.publishKeys(g); err != nil {
			return err
		}
		if err := m.publishRequests(g); err != nil {
			return err
		}
	}
	return nil
}

// publishRequests sends bus g's open requests as one batch (every
// survivor's request of the pass in one envelope): each host takes the
// items of its vehicles.
func (m *soMasking) publishRequests(g int) error {
	if len(m.reqs[g]) == 0 {
		return nil
	}
	b := m.co.Operator().Buses()[g]
	env, err := aggregate.EncodeMaskBatches(&aggregate.MaskBatch{Round: m.reqs[g][0].Round, Feeder: b.Feeder, Bus: b.Bus, Requests: m.reqs[g]})
	if err != nil {
		return err
	}
	for _, data := range env {
		if err := m.conn.Publish(transport.MaskRequest(b.Feeder, b.Bus), data); err != nil {
			m.log.Warn("mask requests not sent; sent again on the next re-send", "err", err)
			return nil
		}
	}
	return nil
}

// admit checks a batch from an EV host against bus g: the envelope must
// be of the subject's bus and the current round (refused whole
// otherwise), and each item's vehicle must not have been carried before
// by another host's batches (refused item by item as "not hosted by
// sender"). It returns which items the SO may step on (nil: none).
func (m *soMasking) admit(subject string, g int, batch *aggregate.MaskBatch, what string) (ok []bool) {
	b := m.co.Operator().Buses()[g]
	if batch.Feeder != b.Feeder || batch.Bus != b.Bus {
		m.refuse(subject, "bad mask message", fmt.Errorf("%w: batch of feeder %d bus %d on the subject of feeder %d bus %d", aggregate.ErrMaskBad, batch.Feeder, batch.Bus, b.Feeder, b.Bus))
		return nil
	}
	// Items for vehicles another host carries first: they are refused
	// whatever their round, so that a copy under another name is named
	// for what it is.
	idx := batch.Indices()
	ok = make([]bool, len(idx))
	some := false
	for k, i := range idx {
		if i >= len(m.co.Members(g)) {
			m.refuse(subject, "bad mask message", fmt.Errorf("%w: item for member %d of a bus of %d", aggregate.ErrMaskBad, i, len(m.co.Members(g))))
			continue
		}
		if h, pinned := m.hostOf[g][i]; pinned && h != batch.Host {
			m.refuse(subject, "not hosted by sender", fmt.Errorf("%s for member %d from host %q; its earlier messages came from host %q", what, i, batch.Host, h))
			continue
		}
		ok[k], some = true, true
	}
	if !some {
		return nil
	}
	if batch.Round != m.co.Round() || m.co.Phase() == charging.PhaseDone {
		m.refuse(subject, "stale", fmt.Errorf("%w: %s of round %d, current round %d", aggregate.ErrMaskStale, what, batch.Round, m.co.Round()))
		return nil
	}
	return ok
}

// pin records that member i's messages come from host (the first host
// whose item for it was taken).
func (m *soMasking) pin(g, i int, host string) {
	if _, ok := m.hostOf[g][i]; !ok {
		m.hostOf[g][i] = host
	}
}

// onKey takes a vehicle's key advertisement.
func (m *soMasking) onKey(subject string, g int, data []byte) error {
	var k aggregate.MaskKey
	if err := k.UnmarshalBinary(data); err != nil {
		m.refuse(subject, "malformed", err)
		return nil
	}
	idx, ok := m.index[g][k.Sender]
	if !ok {
		m.refuse(subject, "unknown sender", fmt.Errorf("mask key from %q, not a member of this bus", k.Sender))
		return nil
	}
	_, had := m.aggs[g].Keys()
	if err := m.aggs[g].SetKey(idx, &k); err != nil {
		m.refuse(subject, "bad mask message", err)
		return nil
	}
	if _, ok := m.aggs[g].Keys(); ok && !had {
		if err := m.save(); err != nil {
			return err
		}
		return m.publishKeys(g)
	}
	if had && m.relayed[g] != m.co.Round() {
		// A vehicle that announces again has not got the list (it
		// started after it went out, or lost it): once per round, so
		// that a bus's late vehicles cost one list, not one each.
		return m.publishKeys(g)
	}
	return nil
}

// begin opens the coordinator's current round on bus g's aggregator.
func (m *soMasking) begin(g int) error {
	a := m.aggs[g]
	if a.Round() < m.co.Round() {
		m.reqs[g] = nil
		return a.Begin(m.co.Round())
	}
	return nil
}

// onReport takes a host's batch of masked reports for bus g, item by
// item as if each had come alone; it returns true when a bus sum went to
// the coordinator.
func (m *soMasking) onReport(subject string, g int, data []byte) (bool, error) {
	batch, err := aggregate.ReadMaskReports(data)
	if err != nil {
		m.refuse(subject, "malformed", err)
		return false, nil
	}
	ok := m.admit(subject, g, batch, "masked reports")
	if ok == nil {
		return false, nil
	}
	if err := m.begin(g); err != nil {
		return false, err
	}
	took := false
	for k := range batch.Reports {
		if !ok[k] {
			continue
		}
		r := &batch.Reports[k]
		if err := m.aggs[g].AddReport(r); err != nil {
			if errors.Is(err, aggregate.ErrMaskStale) {
				// A copy of this round's report after its phase closed:
				// the round was re-sent. Normal, not worth a warning.
				m.late(subject, err)
				continue
			}
			m.reason(subject, err)
			continue
		}
		m.pin(g, r.Index, batch.Host)
		took = true
	}
	if !took {
		return false, nil // nothing new: the bus's phase is where it was
	}
	return m.step(g)
}

// onAnswer takes a host's batch of answers to bus g's requests.
func (m *soMasking) onAnswer(subject string, g int, data []byte) (bool, error) {
	batch, err := aggregate.ReadMaskAnswers(data)
	if err != nil {
		m.refuse(subject, "malformed", err)
		return false, nil
	}
	if batch.Round == m.co.Round() && m.aggs[g].Round() != batch.Round {
		m.refuse(subject, "stale", fmt.Errorf("%w: answers of round %d before its reports", aggregate.ErrMaskStale, batch.Round))
		return false, nil
	}
	ok := m.admit(subject, g, batch, "answers")
	if ok == nil {
		return false, nil
	}
	took := false
	for k := range batch.Answers {
		if !ok[k] {
			continue
		}
		a := &batch.Answers[k]
		if err := m.aggs[g].AddAnswer(a); err != nil {
			if errors.Is(err, aggregate.ErrMaskStale) && a.Pass < m.aggs[g].Pass() {
				m.late(subject, err)
				continue
			}
			m.reason(subject, err)
			continue
		}
		m.pin(g, a.Index, batch.Host)
		took = true
	}
	if !took {
		return false, nil
	}
	return m.step(g)
}

func (m *soMasking) reason(subject string, err error) {
	switch {
	case errors.Is(err, aggregate.ErrMaskStale):
		m.refuse(subject, "stale", err)
	default:
		m.refuse(subject, "bad mask message", err)
	}
}

// step closes bus g's phase once nothing is pending, publishes the next
// requests, and hands a finished round's sum to the coordinator.
func (m *soMasking) step(g int) (bool, error) {
	a := m.aggs[g]
	for !a.Finished() && len(a.Pending()) == 0 {
		reqs, err := a.Close()
		if err != nil {
			return false, fmt.Errorf("masking at bus %d, round %d: %w", g, a.Round(), err)
		}
		m.reqs[g] = reqs
		if err := m.publishRequests(g); err != nil {
			return false, err
		}
	}
	if !a.Finished() {
		return false, nil
	}
	m.reqs[g] = nil
	sum, ok := a.Result()
	if !ok {
		return false, fmt.Errorf("masking at bus %d, round %d: too few vehicles answered to unmask the bus", g, a.Round())
	}
	var err error
	if m.co.Phase() == charging.PhaseBound {
		err = m.co.SetBusSum(g, a.Round(), nil, boundFromDigits(sum))
	} else {
		err = m.co.SetBusSum(g, a.Round(), sum, 0)
	}
	if err != nil {
		return false, err
	}
	m.sums++
	return true, nil
}

// leave drops the members of bus g that have not answered the open
// phase, for good (their processes are gone: RunSO's DropAfter), and
// returns their pseudonyms. Masking cannot keep a dropped vehicle's last
// schedule as a fixed load, as the coordination in the clear does: the SO
// never learns it, and learning it would unmask that vehicle. Its charge
// point stops (Kept -1: it draws nothing), and the survivors' masks with
// it are revealed each round instead, so that their sum still unmasks.
func (m *soMasking) leave(g int) ([]string, error) {
	a := m.aggs[g]
	if a.Round() == m.co.Round() && a.Finished() {
		return nil, nil // this bus's round is complete
	}
	if err := m.begin(g); err != nil { // nobody reported yet at this bus
		return nil, err
	}
	var out []string
	for _, i := range a.Pending() {
		if err := a.Leave(i); err != nil {
			return nil, err
		}
		out = append(out, m.co.Members(g)[i])
		m.left++
	}
	return out, nil
}

// settle moves every bus on after members left: a bus whose phase now
// waits for nobody closes it, and a bus with no member left sums to zero.
// It reports whether some bus sum went to the coordinator.
func (m *soMasking) settle() (bool, error) {
	moved := false
	for g, a := range m.aggs {
		if m.co.Phase() == charging.PhaseDone {
			break
		}
		if a.Live() == 0 {
			if a.Round() == m.co.Round() && a.Finished() {
				continue
			}
			if err := m.begin(g); err != nil {
				return false, err
			}
			var err error
			if m.co.Phase() == charging.PhaseBound {
				err = m.co.SetBusSum(g, m.co.Round(), nil, 0)
			} else {
				err = m.co.SetBusSum(g, m.co.Round(), make([]float64, m.co.Operator().T), 0)
			}
			if err != nil {
				return false, err
			}
			a.Abandon()
			moved = true
			continue
		}
		if a.Round() != m.co.Round() || a.Finished() {
			continue
		}
		ok, err := m.step(g)
		if err != nil {
			return false, err
		}
		moved = moved || ok
	}
	return moved, nil
}

// hostMasking is an EV host's shell around its vehicles' MaskVehicle
// cores: it advertises their keys, takes the key lists, masks every report
// and answers the SO's requests for its vehicles.
type hostMasking struct {
	conn    *transport.Conn
	soKey   ed25519.PublicKey
	name    string // the host's name in its batches (aggregate.MaskBatch.Host)
	log     *slog.Logger
	refuse  func(subject, reason string, err error)
	veh     []*aggregate.MaskVehicle
	keys    []*aggregate.MaskKey
	byIndex map[[3]int]int // (feeder, bus, member index) -> hosted vehicle
	pending map[[2]int][]byte
}

func newHostMasking(cfg *EVHostConfig, refuse func(string, string, error), log *slog.Logger) (*hostMasking, error) {
	h := &hostMasking{conn: cfg.Conn, soKey: cfg.SOKey, name: cfg.Name, log: log, refuse: refuse, byIndex: map[[3]int]int{}, pending: map[[2]int][]byte{}}
	if h.name == "" {
		// Unnamed (tests, benchmarks): a random name still tells this
		// host's batches from another's.
		var b [6]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		h.name = fmt.Sprintf("ev-%x", b)
	}
	for i, ev := range cfg.EVs {
		v, k, err := aggregate.NewMaskVehicle(ev.Feeder, ev.Bus, cfg.Slots, cfg.Senders[i], rand.Reader)
		if err != nil {
			return nil, err
		}
		h.veh, h.keys = append(h.veh, v), append(h.keys, k)
	}
	return h, nil
}

// announce publishes the keys of the hosted vehicles of bus k that have
// no key list yet.
func (h *hostMasking) announce(k [2]int, vehicles []int) {
	for _, i := range vehicles {
		if h.veh[i].Index() >= 0 {
			continue
		}
		data, err := h.keys[i].MarshalBinary()
		if err == nil {
			err = h.conn.Publish(transport.MaskKey(k[0], k[1]), data)
		}
		if err != nil {
			h.log.Warn("mask key not sent; sent again with the next broadcast", "err", err)
		}
	}
}

// onKeys takes a bus's signed key list for the hosted vehicles at it.
func (h *hostMasking) onKeys(subject string, k [2]int, vehicles []int, data []byte) {
	l, err := aggregate.OpenMaskKeys(data, h.soKey)
	if err != nil {
		reason := "malformed"
		if errors.Is(err, aggregate.ErrMaskForged) {
			reason = "forged"
		}
		h.refuse(subject, reason, err)
		return
	}
	if l.Feeder != k[0] || l.Bus != k[1] {
		h.refuse(subject, "wrong bus", fmt.Errorf("key list of feeder %d bus %d", l.Feeder, l.Bus))
		return
	}
	for _, i := range vehicles {
		v := h.veh[i]
		if v.Index() >= 0 {
			continue
		}
		if err := v.SetKeys(l); err != nil {
			h.refuse(subject, "bad mask message", fmt.Errorf("vehicle %d: %w", i, err))
			continue
		}
		h.byIndex[[3]int{k[0], k[1], v.Index()}] = i
	}
}

// ready reports whether every hosted vehicle of the bus has its key list.
func (h *hostMasking) ready(vehicles []int) bool {
	return !slices.ContainsFunc(vehicles, func(i int) bool { return h.veh[i].Index() < 0 })
}

// report masks hosted vehicle i's report of a round: its schedule, or in
// a bound round its bound term in base-2^13 digits (boundDigits). The
// shell sends a bus's reports together (sendReports).
func (h *hostMasking) report(i int, r *charging.Report, slots int) (*aggregate.MaskedReport, error) {
	x := r.Values
	if r.Phase == charging.PhaseBound {
		x = make([]float64, slots)
		if err := boundDigits(r.Bound, x); err != nil {
			return nil, err
		}
	}
	return h.veh[i].Report(r.Round, x)
}

// sendReports publishes the masked reports of a bus's hosted vehicles of
// one round as one batch (or a few, were they over the size limit); it
// returns false when the connection refused them (the SO re-sends the
// round).
func (h *hostMasking) sendReports(k [2]int, round int, reps []aggregate.MaskedReport) (bool, error) {
	if len(reps) == 0 {
		return true, nil
	}
	slices.SortFunc(reps, func(a, b aggregate.MaskedReport) int { return a.Index - b.Index })
	env, err := aggregate.EncodeMaskBatches(&aggregate.MaskBatch{Round: round, Feeder: k[0], Bus: k[1], Host: h.name, Reports: reps})
	if err != nil {
		return false, err
	}
	for _, data := range env {
		if err := h.conn.Publish(transport.MaskReport(k[0], k[1]), data); err != nil {
			h.log.Warn("masked reports not sent; the SO will ask again", "err", err)
			return false, nil
		}
	}
	return true, nil
}

// onRequest answers, in one batch, the items of a request batch of the
// SO that are addressed to hosted vehicles.
func (h *hostMasking) onRequest(subject string, data []byte) {
	batch, err := aggregate.ReadMaskRequests(data)
	if err != nil {
		h.refuse(subject, "malformed", err)
		return
	}
	var answers []aggregate.MaskAnswer
	for k := range batch.Requests {
		q := &batch.Requests[k]
		i, ok := h.byIndex[[3]int{q.Feeder, q.Bus, q.Index}]
		if !ok {
			continue // another host's vehicle
		}
		a, err := h.veh[i].Answer(q)
		if err != nil {
			reason := "bad mask message"
			switch {
			case errors.Is(err, aggregate.ErrMaskStale):
				reason = "stale"
			case errors.Is(err, aggregate.ErrRefused):
				reason = "refused to unmask"
			}
			h.refuse(subject, reason, err)
			continue
		}
		answers = append(answers, *a)
	}
	if len(answers) == 0 {
		return
	}
	env, err := aggregate.EncodeMaskBatches(&aggregate.MaskBatch{Round: batch.Round, Feeder: batch.Feeder, Bus: batch.Bus, Host: h.name, Answers: answers})
	if err != nil {
		h.refuse(subject, "bad mask message", err)
		return
	}
	for _, out := range env {
		if err := h.conn.Publish(transport.MaskAnswer(batch.Feeder, batch.Bus), out); err != nil {
			h.log.Warn("mask answers not sent; the SO will ask again", "err", err)
			return
		}
	}
}

// A bound term is a cost, not a load: far beyond the +-10^4 a masked slot
// takes. boundDigits writes it as three base-2^13 digits, each exact in
// float64 (power-of-two scaling and a remainder smaller than its
// operands), so that only the last, in [0, 2^13), is rounded by the
// fixed-point encoding (2^-33 per vehicle); the SO's sum of the digits
// puts the sum of the terms back together (boundFromDigits).
const boundBase = 1 << 13

func boundDigits(b float64, x []float64) error {
	if len(x) < 3 || math.IsNaN(b) || math.Abs(b) >= 4096*boundBase*boundBase*boundBase {
		return fmt.Errorf("bound term %v cannot be masked in %d slots", b, len(x))
	}
	d2 := math.Floor(b / (boundBase * boundBase))
	r := b - d2*boundBase*boundBase
	d1 := math.Floor(r / boundBase)
	x[0], x[1], x[2] = d2, d1, r-d1*boundBase
	return nil
}

func boundFromDigits(sum []float64) float64 {
	return sum[0]*boundBase*boundBase + sum[1]*boundBase + sum[2]
}
