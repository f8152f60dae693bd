package aggregate

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"slices"
)

// The two sides of masking as protocol cores that step by messages and do
// no I/O (docs/PLATFORM.md "Masking over the network"): MaskVehicle is one
// vehicle at one bus, MaskAggregator the SO's side of one bus. Randomness
// comes in as an io.Reader when a vehicle is made (crypto/rand in every
// caller), time not at all: the shell decides when a phase's answers are
// all in (MaskAggregator.Close). Masking (the mechanism of `gridveil sim`)
// drives both in memory; the services move the same messages over NATS.
//
// One round r, per bus:
//
//	vehicle -> SO:  MaskKey (once, before the first round)
//	SO -> vehicles: MaskKeys (once: every key, the threshold)
//	vehicle -> SO:  MaskedReport{r}: y_i and its seed's shares, encrypted
//	SO -> vehicle:  MaskRequest{r, pass}: masks to reveal with the dropped,
//	                shares to decrypt (relayed from their owners)
//	vehicle -> SO:  MaskAnswer{r, pass}: correction, decrypted shares
//
// A share of b_i for holder j travels through the SO encrypted with a
// one-time pad from the pair's keystream segment of the round (words the
// masks do not use, and that no correction reveals), so that the SO, which
// relays them, never holds t shares in the clear itself.

// Typed refusals of the cores.
var (
	// ErrMaskStale: a message for another round than the current one.
	ErrMaskStale = errors.New("masking message is not for the current round")
	// ErrMaskBad: a message whose content does not fit the bus or round.
	ErrMaskBad = errors.New("masking message does not fit the round")
)

// maskSegment is the layout of a pair's keystream segment of one round:
// slots mask words, then seedChunks pad words for the share the lower
// index sends the higher, then seedChunks for the other way, rounded up to
// whole AES blocks.
func maskSegment(slots int) int { return blockWords(slots + 2*seedChunks) }

// MaskVehicle is one vehicle's side of masking at its bus: its key pair,
// its pair keys with the bus's other vehicles, and the round it last
// reported. It holds only its own schedule, and only while it masks it.
type MaskVehicle struct {
	feeder, bus, slots int
	priv               *ecdh.PrivateKey
	pub                []byte
	csprng             *mrand.ChaCha8 // self-mask seeds and share polynomials
	prg                mrand.ChaCha8

	// From the key list.
	index, n, t int
	single      bool
	keys        [][]byte        // per partner: the pair's AES key (own entry nil)
	streams     []cipher.Stream // per partner: AES-CTR, positioned at segment next
	next        int

	// The current round.
	round    int // -1 before the first report
	last     *MaskedReport
	seed     [16]byte
	own      [seedChunks]fe // own share of own seed
	pad      []uint64       // per partner: pad of its share to this vehicle
	revealed []byte         // per partner: 'c' masks revealed, 'b' share of its seed revealed
	seg      []uint64
	zero     []uint64
	coef     []fe
	evals    []fe
}

// NewMaskVehicle makes a vehicle's key pair from random (crypto/rand in
// every caller; a test may pass a seeded reader) and returns its key
// advertisement. slots is the horizon of its reports.
func NewMaskVehicle(feeder, bus, slots int, sender string, random io.Reader) (*MaskVehicle, *MaskKey, error) {
	if slots < 1 || slots > 4096 {
		return nil, nil, fmt.Errorf("masking: %d slots; a report has 1 to 4096", slots)
	}
	var b [64]byte
	if _, err := io.ReadFull(random, b[:]); err != nil {
		return nil, nil, fmt.Errorf("masking: drawing a key: %w", err)
	}
	priv, err := ecdh.X25519().NewPrivateKey(b[:32])
	if err != nil {
		return nil, nil, fmt.Errorf("masking: %w", err)
	}
	v := &MaskVehicle{feeder: feeder, bus: bus, slots: slots, priv: priv, pub: priv.PublicKey().Bytes(),
		csprng: mrand.NewChaCha8([32]byte(b[32:])), index: -1, round: -1}
	return v, &MaskKey{Feeder: feeder, Bus: bus, Sender: sender, PublicKey: v.pub}, nil
}

// Index is the vehicle's position in its bus's key list (-1 before it).
func (v *MaskVehicle) Index() int { return v.index }

// SetKeys takes the bus's key list as the SO relayed it: the vehicle finds
// its own key, checks every key once, and derives a pair key with each
// other vehicle, binding the hash of the whole list, so that vehicles
// shown different lists get masks that do not cancel.
func (v *MaskVehicle) SetKeys(m *MaskKeys) error {
	return v.setKeys(m, transcript(m.Keys, nil))
}

func (v *MaskVehicle) setKeys(m *MaskKeys, th [32]byte) error {
	if v.keys != nil {
		return fmt.Errorf("%w: the key list came twice", ErrMaskBad)
	}
	if m.Feeder != v.feeder || m.Bus != v.bus {
		return fmt.Errorf("%w: key list of feeder %d bus %d sent to a vehicle of feeder %d bus %d", ErrMaskBad, m.Feeder, m.Bus, v.feeder, v.bus)
	}
	n := len(m.Keys)
	if n > MaxMaskMembers || m.Threshold < 1 || m.Threshold > n {
		return fmt.Errorf("%w: %d keys with threshold %d", ErrMaskBad, n, m.Threshold)
	}
	seen := make(map[string]bool, n)
	self := -1
	for i, k := range m.Keys {
		if len(k) != 32 || seen[string(k)] {
			return fmt.Errorf("%w: key %d of the list is malformed or repeated", ErrMaskBad, i)
		}
		seen[string(k)] = true
		if string(k) == string(v.pub) {
			self = i
		}
	}
	if self < 0 {
		return fmt.Errorf("%w: the key list does not hold this vehicle's key", ErrMaskBad)
	}
	keys := make([][]byte, n)
	streams := make([]cipher.Stream, n)
	var iv [aes.BlockSize]byte
	for j, k := range m.Keys {
		if j == self {
			continue
		}
		pub, err := ecdh.X25519().NewPublicKey(k)
		if err != nil {
			return fmt.Errorf("%w: key %d: %w", ErrMaskBad, j, err)
		}
		key, err := pairKey(v.priv, pub, th)
		if err != nil {
			return err
		}
		blk, err := aes.NewCipher(key)
		if err != nil {
			return fmt.Errorf("masking: %w", err)
		}
		keys[j], streams[j] = key, cipher.NewCTR(blk, iv[:])
	}
	v.index, v.n, v.t, v.single = self, n, m.Threshold, m.SingleMask
	v.keys, v.streams = keys, streams
	w := maskSegment(v.slots)
	v.seg, v.zero = make([]uint64, w), make([]uint64, w)
	v.pad = make([]uint64, seedChunks*n)
	v.revealed = make([]byte, n)
	v.coef, v.evals = make([]fe, n), make([]fe, n)
	return nil
}

// seek positions every pair stream at the start of segment r.
func (v *MaskVehicle) seek(r int) error {
	iv := segmentIV(r, v.slots)
	for j, k := range v.keys {
		if k == nil {
			continue
		}
		blk, err := aes.NewCipher(k)
		if err != nil {
			return fmt.Errorf("masking: %w", err)
		}
		v.streams[j] = cipher.NewCTR(blk, iv[:])
	}
	v.next = r
	return nil
}

// segmentIV is the CTR counter block at which segment r starts.
func segmentIV(r, slots int) [aes.BlockSize]byte {
	var iv [aes.BlockSize]byte
	c := uint64(r) * uint64(maskSegment(slots)/2)
	for k := 0; k < 8; k++ {
		iv[15-k] = byte(c >> (8 * k))
	}
	return iv
}

// Report masks the vehicle's schedule x (kW per slot) for round r:
// y_i = enc(x) + PRG(b_i) + sum_{j>i} PRG(k_ij, r) - sum_{j<i} PRG(k_ji, r),
// with a fresh self-mask seed b_i Shamir-shared among the bus. Asked again
// for the round it last reported it returns the same report; an older
// round is refused. Rounds may be skipped (the streams seek forward).
func (v *MaskVehicle) Report(r int, x []float64) (*MaskedReport, error) {
	if v.keys == nil {
		return nil, fmt.Errorf("%w: a report asked before the key list", ErrMaskBad)
	}
	if r < 0 || r < v.round {
		return nil, fmt.Errorf("%w: round %d after round %d", ErrMaskStale, r, v.round)
	}
	if r == v.round {
		return v.last, nil
	}
	if len(x) != v.slots {
		return nil, fmt.Errorf("%w: %d values for %d slots", ErrMaskBad, len(x), v.slots)
	}
	for _, val := range x {
		if math.IsNaN(val) || math.Abs(val) > MaxPlausibleKW {
			return nil, fmt.Errorf("%w: a schedule value %v kW is not within +-%d kW", ErrMaskBad, val, MaxPlausibleKW)
		}
	}
	if r != v.next {
		if err := v.seek(r); err != nil {
			return nil, err
		}
	}
	n, i, slots := v.n, v.index, v.slots
	m := &MaskedReport{Round: r, Feeder: v.feeder, Bus: v.bus, Index: i, Words: make([]uint64, slots)}
	y := m.Words
	if v.single {
		for t, val := range x {
			y[t] = encode64(val)
		}
	} else {
		// A fresh self-mask seed, expanded into the report and shared.
		v.csprng.Read(v.seed[:])
		seedPRG(&v.prg, v.seed)
		for t, val := range x {
			y[t] = encode64(val) + v.prg.Uint64()
		}
		m.Shares = make([]uint64, seedChunks*n)
		var chunks [seedChunks]fe
		toChunks(v.seed[:], chunks[:])
		for c, val := range chunks {
			split(val, v.t, n, v.csprng.Uint64, v.coef, v.evals)
			for h, e := range v.evals[:n] {
				m.Shares[h*seedChunks+c] = e
			}
			v.own[c] = v.evals[i]
			m.Shares[i*seedChunks+c] = 0
		}
	}
	seg := v.seg
	for j := 0; j < n; j++ {
		if j == i {
			continue
		}
		keystream(v.streams[j], seg, v.zero)
		mask := seg[:slots]
		if i < j {
			for t, w := range mask {
				y[t] += w
			}
		} else {
			for t, w := range mask {
				y[t] -= w
			}
		}
		send, recv := seg[slots:slots+seedChunks], seg[slots+seedChunks:slots+2*seedChunks]
		if i > j {
			send, recv = recv, send
		}
		if m.Shares != nil {
			for c := range seedChunks {
				m.Shares[j*seedChunks+c] ^= send[c]
			}
		}
		copy(v.pad[j*seedChunks:], recv)
	}
	v.next = r + 1
	v.round, v.last = r, m
	clear(v.revealed)
	return m, nil
}

// Answer is the vehicle's step on the SO's request in its current round:
// the correction for the dropped (its masks of the round with each, as it
// added them) and its decrypted shares of the owners' seeds. It refuses,
// with ErrRefused, to reveal in one round both its masks with a vehicle
// and its share of that vehicle's seed (the two would unmask that
// vehicle's report), across every request of the round.
func (v *MaskVehicle) Answer(q *MaskRequest) (*MaskAnswer, error) {
	if v.keys == nil || v.round < 0 {
		return nil, fmt.Errorf("%w: a request before any report", ErrMaskStale)
	}
	if q.Round != v.round {
		return nil, fmt.Errorf("%w: request of round %d, this vehicle is at round %d", ErrMaskStale, q.Round, v.round)
	}
	if q.Feeder != v.feeder || q.Bus != v.bus || q.Index != v.index {
		return nil, fmt.Errorf("%w: request for vehicle %d at feeder %d bus %d sent to vehicle %d at feeder %d bus %d", ErrMaskBad, q.Index, q.Feeder, q.Bus, v.index, v.feeder, v.bus)
	}
	if err := checkIndexList("dropped", q.Dropped); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMaskBad, err)
	}
	if err := checkIndexList("owners", q.Owners); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMaskBad, err)
	}
	if len(q.Shares) != seedChunks*len(q.Owners) {
		return nil, fmt.Errorf("%w: %d share words for %d owners", ErrMaskBad, len(q.Shares), len(q.Owners))
	}
	for _, j := range q.Dropped {
		if j >= v.n || j == v.index {
			return nil, fmt.Errorf("%w: vehicle %d cannot be dropped for vehicle %d of %d", ErrMaskBad, j, v.index, v.n)
		}
		if v.revealed[j] == 'b' {
			return nil, ErrRefused
		}
	}
	for _, j := range q.Owners {
		if j >= v.n {
			return nil, fmt.Errorf("%w: owner %d of %d vehicles", ErrMaskBad, j, v.n)
		}
		if v.revealed[j] == 'c' || slices.Contains(q.Dropped, j) {
			return nil, ErrRefused
		}
		if v.single {
			return nil, fmt.Errorf("%w: shares asked without self-masks", ErrMaskBad)
		}
	}
	a := &MaskAnswer{Round: q.Round, Feeder: v.feeder, Bus: v.bus, Pass: q.Pass, Index: v.index}
	if len(q.Dropped) > 0 {
		a.Correction = make([]uint64, v.slots)
		seg := make([]uint64, maskSegment(v.slots))
		iv := segmentIV(v.round, v.slots)
		for _, j := range q.Dropped {
			blk, err := aes.NewCipher(v.keys[j])
			if err != nil {
				return nil, fmt.Errorf("masking: %w", err)
			}
			keystream(cipher.NewCTR(blk, iv[:]), seg, make([]uint64, len(seg)))
			if v.index < j {
				for t, w := range seg[:v.slots] {
					a.Correction[t] += w
				}
			} else {
				for t, w := range seg[:v.slots] {
					a.Correction[t] -= w
				}
			}
		}
	}
	if len(q.Owners) > 0 {
		a.Owners = slices.Clone(q.Owners)
		a.Shares = make([]uint64, len(q.Shares))
		for k, j := range q.Owners {
			for c := range seedChunks {
				var s uint64
				if j == v.index {
					s = v.own[c]
				} else {
					s = q.Shares[k*seedChunks+c] ^ v.pad[j*seedChunks+c]
				}
				if s >= P {
					return nil, fmt.Errorf("%w: the share relayed from vehicle %d does not decrypt to a field element (altered in transit)", ErrMaskBad, j)
				}
				a.Shares[k*seedChunks+c] = s
			}
		}
	}
	for _, j := range q.Dropped {
		v.revealed[j] = 'c'
	}
	for _, j := range q.Owners {
		v.revealed[j] = 'b'
	}
	return a, nil
}

// maskPhase is where a MaskAggregator's round stands.
type maskPhase uint8

const (
	maskIdle     maskPhase = iota // no round open
	maskReports                   // collecting masked reports
	maskCorrect                   // collecting corrections for the dropped
	maskSeeds                     // collecting shares of the survivors' seeds
	maskFinished                  // the round is over: Result
)

// MaskAggregator is the SO's side of masking at one bus: it collects the
// key list, then, round by round, the masked reports, asks the survivors
// for corrections until every one answered, then for their shares of the
// survivors' seeds, and unmasks the survivors' sum. It never holds a
// vehicle's schedule, a pair key or a seed share in the clear beyond the
// t shares per survivor it needs.
type MaskAggregator struct {
	feeder, bus, n, t, slots int
	single                   bool
	keys                     [][]byte
	nkeys                    int
	gone                     []bool // members that left for good (Leave)

	round     int
	phase     maskPhase
	pass      int
	y         [][]uint64 // per member: its report of the round (nil: lost)
	enc       [][]uint64 // per member: its encrypted shares
	survivors []int
	dropped   []int
	done      int        // dropped[:done] are corrected by every survivor
	corr      [][]uint64 // per member: its corrections of the round, summed
	answered  []bool
	shares    [][]uint64 // per member: its decrypted shares of the survivors' seeds (seed phase)
	total     []uint64
	ok        bool
	revealed  map[int][16]byte
	recovered []float64
}

// NewMaskAggregator starts the SO's side for a bus of n vehicles, with
// threshold t (0: a majority, at least 2 on buses of two or more).
func NewMaskAggregator(feeder, bus, n, t, slots int, single bool) (*MaskAggregator, error) {
	if n < 1 || n > MaxMaskMembers {
		return nil, fmt.Errorf("masking: a bus of %d vehicles; masking takes 1 to %d", n, MaxMaskMembers)
	}
	if slots < 1 || slots > 4096 {
		return nil, fmt.Errorf("masking: %d slots; a report has 1 to 4096", slots)
	}
	if t == 0 {
		t = max(n/2+1, min(2, n))
	}
	if t < 1 || t > n {
		return nil, fmt.Errorf("masking: threshold %d must be in 1..%d", t, n)
	}
	return &MaskAggregator{feeder: feeder, bus: bus, n: n, t: t, slots: slots, single: single,
		keys: make([][]byte, n), gone: make([]bool, n), round: -1, total: make([]uint64, slots)}, nil
}

// Threshold is the bus's threshold.
func (a *MaskAggregator) Threshold() int { return a.t }

// SetKey takes member index's key advertisement. The same key again is
// ignored; another key for the same member, or a key another member holds,
// is refused.
func (a *MaskAggregator) SetKey(index int, k *MaskKey) error {
	if index < 0 || index >= a.n {
		return fmt.Errorf("%w: member %d of %d", ErrMaskBad, index, a.n)
	}
	if k.Feeder != a.feeder || k.Bus != a.bus || len(k.PublicKey) != 32 {
		return fmt.Errorf("%w: key of feeder %d bus %d (%d bytes) for feeder %d bus %d", ErrMaskBad, k.Feeder, k.Bus, len(k.PublicKey), a.feeder, a.bus)
	}
	if old := a.keys[index]; old != nil {
		if string(old) == string(k.PublicKey) {
			return nil
		}
		return fmt.Errorf("%w: member %d announced a second, different key", ErrMaskBad, index)
	}
	for j, o := range a.keys {
		if o != nil && string(o) == string(k.PublicKey) {
			return fmt.Errorf("%w: member %d announced member %d's key", ErrMaskBad, index, j)
		}
	}
	a.keys[index] = slices.Clone(k.PublicKey)
	a.nkeys++
	return nil
}

// Keys returns the key list to relay, once every member announced its key.
func (a *MaskAggregator) Keys() (*MaskKeys, bool) {
	if a.nkeys < a.n {
		return nil, false
	}
	return &MaskKeys{Feeder: a.feeder, Bus: a.bus, Threshold: a.t, SingleMask: a.single, Keys: a.keys}, true
}

// Begin opens round r, which must be later than the last one.
func (a *MaskAggregator) Begin(r int) error {
	if a.nkeys < a.n {
		return fmt.Errorf("masking: round %d begun with %d of %d keys", r, a.nkeys, a.n)
	}
	if r <= a.round {
		return fmt.Errorf("masking: round %d begun after round %d", r, a.round)
	}
	a.round, a.phase, a.pass = r, maskReports, 0
	if a.y == nil {
		a.y, a.enc, a.corr, a.shares = make([][]uint64, a.n), make([][]uint64, a.n), make([][]uint64, a.n), make([][]uint64, a.n)
		a.answered = make([]bool, a.n)
	}
	clear(a.y)
	clear(a.enc)
	clear(a.shares)
	for i := range a.corr {
		if a.corr[i] != nil {
			clear(a.corr[i])
		}
	}
	a.survivors, a.dropped, a.done = a.survivors[:0], a.dropped[:0], 0
	a.ok, a.revealed, a.recovered = false, nil, nil
	return nil
}

// Round is the open round (-1 before the first).
func (a *MaskAggregator) Round() int { return a.round }

// Pass is the open round's current request pass (0: collecting reports).
func (a *MaskAggregator) Pass() int { return a.pass }

// AddReport takes a masked report of the open round. A repeated identical
// report is ignored (at-least-once delivery); a report after the report
// phase closed, for another round or bus, of the wrong size, or differing
// from the one already taken, is refused. The report is kept, not copied.
func (a *MaskAggregator) AddReport(m *MaskedReport) error {
	if m.Feeder != a.feeder || m.Bus != a.bus || m.Index < 0 || m.Index >= a.n {
		return fmt.Errorf("%w: report of member %d at feeder %d bus %d for a bus of %d at feeder %d bus %d", ErrMaskBad, m.Index, m.Feeder, m.Bus, a.n, a.feeder, a.bus)
	}
	if m.Round != a.round || a.phase != maskReports {
		return fmt.Errorf("%w: report of round %d from member %d; round %d is open, reports %s", ErrMaskStale, m.Round, m.Index, a.round, map[bool]string{true: "open", false: "closed"}[a.phase == maskReports])
	}
	if a.gone[m.Index] {
		return fmt.Errorf("%w: a report from member %d, which left", ErrMaskBad, m.Index)
	}
	want := seedChunks * a.n
	if a.single {
		want = 0
	}
	if len(m.Words) != a.slots || len(m.Shares) != want {
		return fmt.Errorf("%w: report of %d words and %d share words from member %d, the bus needs %d and %d", ErrMaskBad, len(m.Words), len(m.Shares), m.Index, a.slots, want)
	}
	if old := a.y[m.Index]; old != nil {
		if slices.Equal(old, m.Words) && slices.Equal(a.enc[m.Index], m.Shares) {
			return nil
		}
		return fmt.Errorf("%w: member %d sent a second, different report for round %d", ErrMaskBad, m.Index, m.Round)
	}
	a.y[m.Index], a.enc[m.Index] = m.Words, m.Shares
	return nil
}

// Leave records that member i has left for good (its process is gone):
// no phase waits for it from now on, and every round treats it as
// dropped, the survivors revealing their masks of the round with it (which
// unmask nothing: its reports stop). A member that leaves after its report
// of the open round came stays in that round's sum unless it is also
// missing from a correction pass.
func (a *MaskAggregator) Leave(i int) error {
	if i < 0 || i >= a.n {
		return fmt.Errorf("%w: member %d of %d", ErrMaskBad, i, a.n)
	}
	a.gone[i] = true
	return nil
}

// Live is the number of members that have not left.
func (a *MaskAggregator) Live() int {
	n := 0
	for _, g := range a.gone {
		if !g {
			n++
		}
	}
	return n
}

// Pending lists the members whose message of the current phase is still
// missing, so that a shell can close the phase early when none is.
func (a *MaskAggregator) Pending() []int {
	var out []int
	switch a.phase {
	case maskReports:
		for i, y := range a.y {
			if y == nil && !a.gone[i] {
				out = append(out, i)
			}
		}
	case maskCorrect, maskSeeds:
		for _, i := range a.survivors {
			if !a.answered[i] && !a.gone[i] {
				out = append(out, i)
			}
		}
	}
	return out
}

// Close ends the current phase: what has not come now never counts (a
// member whose report or correction is missing has dropped from this
// round). It returns the requests of the next phase, one per member to
// ask, or none when the round is over (then Result).
func (a *MaskAggregator) Close() ([]MaskRequest, error) {
	switch a.phase {
	case maskReports:
		for i, y := range a.y {
			if y == nil {
				a.dropped = append(a.dropped, i)
			} else {
				a.survivors = append(a.survivors, i)
			}
		}
		if len(a.survivors) < a.t {
			return a.finish(false)
		}
		clear(a.total)
		for _, i := range a.survivors {
			for t, w := range a.y[i] {
				a.total[t] += w
			}
		}
		return a.nextPass()
	case maskCorrect:
		kept := a.survivors[:0]
		for _, i := range a.survivors {
			if a.answered[i] {
				kept = append(kept, i)
				continue
			}
			// Its correction is lost: it leaves the sum, with the
			// corrections it sent in earlier passes, and the others must
			// now reveal their masks with it too.
			for t, w := range a.y[i] {
				a.total[t] -= w
			}
			if c := a.corr[i]; c != nil {
				for t, w := range c {
					a.total[t] += w
				}
				clear(c)
			}
			a.dropped = append(a.dropped, i)
		}
		a.survivors = kept
		if len(a.survivors) < a.t {
			return a.finish(false)
		}
		return a.nextPass()
	case maskSeeds:
		return a.unmaskSeeds()
	}
	return nil, fmt.Errorf("masking: no phase to close (round %d)", a.round)
}

// nextPass asks every survivor for its masks with the dropped not yet
// corrected, or moves to the seeds when none are left.
func (a *MaskAggregator) nextPass() ([]MaskRequest, error) {
	pending := a.dropped[a.done:]
	a.done = len(a.dropped)
	clear(a.answered)
	if len(pending) > 0 {
		a.phase = maskCorrect
		a.pass++
		reqs := make([]MaskRequest, len(a.survivors))
		for k, i := range a.survivors {
			reqs[k] = MaskRequest{Round: a.round, Feeder: a.feeder, Bus: a.bus, Pass: a.pass, Index: i, Dropped: slices.Clone(pending)}
		}
		return reqs, nil
	}
	if a.single {
		return a.finish(true)
	}
	a.phase = maskSeeds
	a.pass++
	reqs := make([]MaskRequest, len(a.survivors))
	for k, h := range a.survivors {
		q := MaskRequest{Round: a.round, Feeder: a.feeder, Bus: a.bus, Pass: a.pass, Index: h, Owners: slices.Clone(a.survivors), Shares: make([]uint64, seedChunks*len(a.survivors))}
		for o, i := range a.survivors {
			copy(q.Shares[o*seedChunks:(o+1)*seedChunks], a.enc[i][h*seedChunks:(h+1)*seedChunks])
		}
		reqs[k] = q
	}
	return reqs, nil
}

// AddAnswer takes a survivor's answer to the current pass. A repeated
// identical answer is ignored; one for another pass, from a member not
// asked, or not answering what was asked, is refused.
func (a *MaskAggregator) AddAnswer(m *MaskAnswer) error {
	if m.Feeder != a.feeder || m.Bus != a.bus || m.Index < 0 || m.Index >= a.n {
		return fmt.Errorf("%w: answer of member %d at feeder %d bus %d for a bus of %d at feeder %d bus %d", ErrMaskBad, m.Index, m.Feeder, m.Bus, a.n, a.feeder, a.bus)
	}
	if m.Round != a.round || m.Pass != a.pass || (a.phase != maskCorrect && a.phase != maskSeeds) {
		return fmt.Errorf("%w: answer of round %d pass %d from member %d; round %d pass %d is open", ErrMaskStale, m.Round, m.Pass, m.Index, a.round, a.pass)
	}
	if !slices.Contains(a.survivors, m.Index) {
		return fmt.Errorf("%w: answer from member %d, who was not asked", ErrMaskBad, m.Index)
	}
	if a.answered[m.Index] {
		return nil
	}
	switch a.phase {
	case maskCorrect:
		if len(m.Correction) != a.slots || len(m.Owners) != 0 {
			return fmt.Errorf("%w: member %d answered a correction with %d words and %d shares", ErrMaskBad, m.Index, len(m.Correction), len(m.Owners))
		}
		c := a.corr[m.Index]
		if c == nil {
			c = make([]uint64, a.slots)
			a.corr[m.Index] = c
		}
		for t, w := range m.Correction {
			a.total[t] -= w
			c[t] += w
		}
	case maskSeeds:
		if len(m.Correction) != 0 || !slices.Equal(m.Owners, a.survivors) || len(m.Shares) != seedChunks*len(a.survivors) {
			return fmt.Errorf("%w: member %d did not answer with its shares of the survivors' seeds", ErrMaskBad, m.Index)
		}
		for _, s := range m.Shares {
			if s >= P {
				return fmt.Errorf("%w: member %d answered a share outside GF(P)", ErrMaskBad, m.Index)
			}
		}
		a.shares[m.Index] = m.Shares
	}
	a.answered[m.Index] = true
	return nil
}

// unmaskSeeds reconstructs every survivor's seed from the first t
// survivors (in member order) that answered, and subtracts its mask.
func (a *MaskAggregator) unmaskSeeds() ([]MaskRequest, error) {
	var holders []int
	for _, h := range a.survivors {
		if len(holders) == a.t {
			break
		}
		if a.answered[h] {
			holders = append(holders, h)
		}
	}
	if len(holders) < a.t {
		return a.finish(false)
	}
	xs := make([]uint64, len(holders))
	for k, h := range holders {
		xs[k] = uint64(h + 1)
	}
	w, err := lagrangeAtZero(xs)
	if err != nil {
		return nil, err
	}
	a.revealed = make(map[int][16]byte, len(a.survivors))
	var prg mrand.ChaCha8
	for o, i := range a.survivors {
		var chunks [seedChunks]fe
		for c := range chunks {
			for k, h := range holders {
				chunks[c] = fadd(chunks[c], fmul(w[k], a.shares[h][o*seedChunks+c]))
			}
		}
		var seed [16]byte
		fromChunks(chunks[:], seed[:])
		a.revealed[i] = seed
		seedPRG(&prg, seed)
		for t := range a.total {
			a.total[t] -= prg.Uint64()
		}
	}
	return a.finish(true)
}

// finish ends the round; with ok, it decodes the survivors' sum and checks
// that the masks cancelled.
func (a *MaskAggregator) finish(ok bool) ([]MaskRequest, error) {
	a.phase, a.ok = maskFinished, ok
	if !ok {
		return nil, nil
	}
	a.recovered = make([]float64, a.slots)
	limit := MaxPlausibleKW * float64(a.n)
	for t, w := range a.total {
		a.recovered[t] = decode64(w)
		if math.Abs(a.recovered[t]) > limit {
			a.ok = false
			return nil, fmt.Errorf("%w: slot %d sums to %.3g kW from %d vehicles; they derived different pair keys (was each shown the same key list?) or a message was altered", ErrMasksDoNotCancel, t, a.recovered[t], a.n)
		}
	}
	return nil, nil
}

// Abandon ends the open round without a sum: the shell found that no
// member is left to report (it sets the bus's sum itself).
func (a *MaskAggregator) Abandon() { a.phase, a.ok = maskFinished, false }

// Finished reports whether the open round is over.
func (a *MaskAggregator) Finished() bool { return a.phase == maskFinished }

// Result is the finished round's outcome: the survivors' sum (kW per
// slot) and true, or false when fewer than the threshold remained. The
// slice is the aggregator's; copy it to keep it past the next round.
func (a *MaskAggregator) Result() ([]float64, bool) {
	if a.phase != maskFinished || !a.ok {
		return nil, false
	}
	return a.recovered, true
}

// Dropped lists the members left out of the round's sum (report or
// correction missing), in the order they were found missing.
func (a *MaskAggregator) Dropped() []int { return a.dropped }
