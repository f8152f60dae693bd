package aggregate

import (
	"cmp"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/bits"
	mrand "math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/gridveil/gridveil/charging"
)

// MaskingConfig parameterises pairwise-mask secure aggregation.
type MaskingConfig struct {
	// Threshold is how many of a bus's vehicles must survive an iteration
	// for its sum to be recovered, and how many colluding vehicles it
	// takes to learn another's self-mask seed. 0 means a majority:
	// floor(n/2) + 1 (at least 2 on buses of two or more).
	Threshold int
	// DropRate is the probability that a vehicle's message is lost, in
	// each phase of an iteration: its masked report, and its answer when
	// the SO unmasks (simulated dropouts, from the seeded generator).
	DropRate float64
	// Authenticate has every vehicle sign its mask public key under a
	// pseudonym certificate from the CA (C6, auth/pseudonym), and every
	// vehicle check the list the LAG relays before agreeing keys, so that
	// the LAG cannot substitute a key of its own. Without it the LAG is
	// trusted to relay keys faithfully. It costs set-up only: a
	// certificate, a signature and a batch verification per vehicle.
	Authenticate bool
	// SingleMask leaves out the per-iteration self-masks (double masking).
	// That is safe only against an SO that follows the protocol and a
	// network that delivers on time: without self-masks, an SO that
	// claims a vehicle dropped, or that keeps a report arriving after the
	// vehicle was declared dropped, unmasks that report (that one
	// iteration's, not others'). It saves two ChaCha8 expansions and one
	// seed sharing per vehicle per iteration.
	SingleMask bool
}

// ErrTooFewSurvivors is returned when a bus's first round could not be
// unmasked in maxFirstTries tries, each with fewer than the threshold of
// its vehicles answering, so that the SO has no sum for it at all.
var ErrTooFewSurvivors = errors.New("masking: too few vehicles survived to unmask the bus sum")

// ErrMasksDoNotCancel is returned when a bus's recovered sum is beyond
// anything its vehicles could draw: the masks did not cancel, because the
// vehicles derived different pair keys (a LAG that relayed different key
// lists to different vehicles) or a report was altered in transit.
var ErrMasksDoNotCancel = errors.New("masking: the masks did not cancel")

// MaxPlausibleKW bounds what one vehicle can draw in a slot, for the SO's
// check that masks cancelled: a sum that did not is uniform over
// +-2^31 kW, so a bound this loose still catches it in every slot but a
// few in 10^4.
const MaxPlausibleKW = 10000

// ErrRefused is returned when the SO asks honest vehicles, in one
// iteration, both for a vehicle's self-mask seed shares and for their
// pairwise masks with it: the two together would unmask that vehicle's
// report.
var ErrRefused = errors.New("masking: honest vehicles refuse to reveal both a vehicle's self-mask and their pairwise masks with it")

// Masking is secure aggregation by pairwise masks with double masking, after
// Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving
// Machine Learning" (CCS 2017), run per bus over the iterations of the
// coordination, with dropout recovery that reveals only the iteration's
// masks.
//
// Set-up, once per bus: every vehicle i makes an X25519 key pair (s_i,
// S_i); the LAG relays the public keys (with Authenticate, each signed
// under a CA-certified pseudonym and checked by every vehicle:
// checkAnnouncements); each pair derives k_ij = HKDF-SHA256(X25519(s_i,
// S_j)) with the hash of the relayed list as info, and keys AES-128-CTR
// with it. The
// pair's keystream is cut into one segment per masking round r (a try of
// an iteration): blocks [r B, (r+1) B) of AES-CTR_{k_ij}, B = ceil(T/2) + 3;
// its first T words are the round's mask PRG(k_ij, r), the next six the
// pads of the two seed shares the pair exchanges.
//
// The two sides are MaskVehicle and MaskAggregator (maskcore.go), cores
// that step by messages; Masking runs one MaskVehicle per vehicle and one
// MaskAggregator per bus in memory, losing messages at DropRate, and its
// results do not depend on that split (sim's files are byte-identical to
// the single-object version it replaced). The seed shares travel to their
// holders through the SO, each encrypted by a one-time pad from the
// pair's keystream segment of the round.
//
// Every iteration r, in three phases:
//
//  1. Report. Vehicle i draws a fresh self-mask seed b_i (crypto quality),
//     Shamir-shares it (threshold t, in GF(2^61-1)) among the bus, and sends
//     y_i = enc(x_i) + PRG(b_i) + sum_{j>i} PRG(k_ij, r) - sum_{j<i} PRG(k_ji, r)
//     in Z_2^64, with enc the fixed-point encoding of FixedScale and PRG(b)
//     ChaCha8 keyed by b. Reports from the set D of vehicles are lost.
//  2. Corrections. The pairwise masks between survivors U cancel in
//     sum_{i in U} y_i; those between U and D do not. Each survivor i sends
//     c_i = sum_{j in D} ±PRG(k_ij, r), its masks of this iteration with
//     the dropped, and the SO subtracts them. A survivor whose correction is
//     lost moves to D: the SO subtracts its y_i and asks the others for
//     their masks with it, until no answer is missing.
//  3. Self-masks. For each survivor the SO collects t shares of b_i and
//     subtracts PRG(b_i).
//
// The result is sum_{i in U} x_i exactly, up to fixed-point rounding. If
// fewer than t vehicles remain the bus cannot be unmasked that iteration.
//
// The SO coordinates on complete sums: in an iteration in which a vehicle
// of the bus dropped, or the bus could not be unmasked, it uses the bus's
// last complete sum. A partial sum leaves out the dropped vehicles' load,
// an error that does not shrink, and the iteration never settles; a stale
// complete sum's error vanishes as the schedules converge. A bus's first
// round is run again, with fresh masks, until it completes (at most
// maxFirstTries times; failing that the SO starts from the last partial
// sum). (A vehicle that
// leaves for good is a change of the problem, not a dropout.)
//
// Why corrections rather than Bonawitz's Shamir-shared private keys: keys
// persist over iterations here, and a revealed s_j would unmask every
// earlier report of vehicle j (the SO holds those y_j and learnt their
// b_j). A correction is one iteration's keystream segment, which says
// nothing of other segments (PRF security of AES), so a vehicle that drops
// keeps its key and its history stays hidden. The cost: every survivor must
// answer, not just t of them; one that does not is treated as dropped.
//
// What it protects against: an honest-but-curious SO, or an eavesdropper on
// any link, sees each y_i uniformly distributed in Z_2^64^T whatever x_i is
// (PRG security of AES-CTR and ChaCha8, CDH in X25519): it learns the bus
// sums and nothing else. Fewer than t colluding vehicles learn no
// self-mask seed of another. An SO that claims a survivor dropped, to get
// the other vehicles' masks with it while holding its y_i, is refused: an
// honest vehicle never reveals, in one iteration, both its share of b_j and
// its mask with j (ErrRefused); with fewer than t corrupt vehicles one of
// the two is missing. Not protected: the SO colluding with all but one
// vehicle of a bus learns the last one's x from the sum (inherent in any
// exact sum); without Authenticate, an active LAG that substitutes public
// keys; with it, a LAG working with as many certified vehicles as the bus
// has others (what all-but-one collusion learns anyway); a bus with a
// single vehicle (its sum is its schedule).
type Masking struct {
	cfg     MaskingConfig
	p       *charging.Problem
	seed    uint64
	session [16]byte // names this coordination run in signed mask keys
	ca      *maskCA  // with Authenticate
	bus     map[[2]int]*maskBus
	rec     recorder
}

// maskBus is one bus of the in-process driver: its vehicles' cores, the
// SO's core, and what the SO keeps between iterations.
type maskBus struct {
	n, t     int
	pk       [][]byte
	veh      []*MaskVehicle // in the group's order
	agg      *MaskAggregator
	round    int         // the next masking round (one per try)
	drop     *mrand.Rand // simulated network losses; seeded
	lastDrop []int       // vehicles (group order) left out of the last round's sum
	lastFull []float64   // the last complete sum the SO recovered
	failed   int         // rounds in which too few vehicles remained
	trace    func(*maskRound)
	tamper   func(reports []*MaskedReport) // tests only: alters reports in transit
}

// maskRound is what passed between a bus's vehicles and the SO in one
// iteration: the SO's view for the recorder, and more for tests that play
// the SO against the protocol.
type maskRound struct {
	y           [][]uint64       // each vehicle's report (all, lost or not)
	reported    []bool           // whose report reached the SO
	seeds       [][16]byte       // each vehicle's self-mask seed (the vehicles' secret)
	revealed    map[int][16]byte // self-mask seeds the SO reconstructed
	corrections map[int][]uint64 // survivors' corrections, summed over the phase-2 passes
	dropped     []int            // left out of the sum: report or correction lost
	recovered   []float64        // the survivors' sum the SO recovered, kW (nil if it could not)
}

const seedChunks = 3 // 16-byte seed in 7-byte field chunks

// maxFirstTries bounds how often the SO repeats a bus's first round.
const maxFirstTries = 20

// NewMasking runs the set-up round for every bus: each vehicle's key pair
// (from crypto/rand), the key list relayed, every pair's key. Its cost is
// O(n_b^2) X25519 operations per bus.
func NewMasking(p *charging.Problem, cfg MaskingConfig, seed uint64, record bool) (*Masking, error) {
	if cfg.DropRate < 0 || cfg.DropRate >= 1 || math.IsNaN(cfg.DropRate) {
		return nil, fmt.Errorf("masking: drop rate %v must be in [0, 1)", cfg.DropRate)
	}
	m := &Masking{cfg: cfg, p: p, seed: seed, bus: map[[2]int]*maskBus{}, rec: newRecorder(p, "masking", record, 1)}
	if _, err := rand.Read(m.session[:]); err != nil {
		return nil, fmt.Errorf("masking: %w", err)
	}
	if cfg.Authenticate {
		ca, err := newMaskCA()
		if err != nil {
			return nil, err
		}
		m.ca = ca
	}
	gs := groups(p)
	keys := slices.SortedFunc(maps.Keys(gs), func(a, b [2]int) int {
		return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
	})
	// Buses set up independently, on every core: at 10^5 vehicles with
	// certificates this is a minute of work on one.
	buses := make([]*maskBus, len(keys))
	errs := make([]error, len(keys))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(keys)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(keys) {
					return
				}
				buses[i], errs[i] = m.setup(keys[i], gs[keys[i]])
			}
		}()
	}
	wg.Wait()
	for i, k := range keys {
		if errs[i] != nil {
			return nil, errs[i]
		}
		m.bus[k] = buses[i]
	}
	return m, nil
}

// setup runs a bus's key advertisement and key list through the cores, as
// the services do over the network.
func (m *Masking) setup(k [2]int, evs []int) (*maskBus, error) {
	n := len(evs)
	agg, err := NewMaskAggregator(k[0], k[1], n, m.cfg.Threshold, m.p.Slots, m.cfg.SingleMask)
	if err != nil {
		return nil, fmt.Errorf("%w at bus %s: lower the threshold, or use 0 for a majority of each bus", err, busKey(m.p, charging.Group{Feeder: k[0], Bus: k[1]}))
	}
	b := &maskBus{
		n: n, t: agg.Threshold(), agg: agg,
		veh:  make([]*MaskVehicle, n),
		drop: mrand.New(mrand.NewPCG(m.seed^uint64(k[0])<<20^uint64(k[1]), 0x64726f70)),
	}
	for i, ev := range evs {
		v, key, err := NewMaskVehicle(k[0], k[1], m.p.Slots, m.p.EVs[ev].ID, rand.Reader)
		if err != nil {
			return nil, err
		}
		if err := agg.SetKey(i, key); err != nil {
			return nil, err
		}
		b.veh[i] = v
	}
	list, _ := agg.Keys()
	b.pk = list.Keys
	var ann []maskAnnounce // what the LAG relays
	if m.ca != nil {
		bus := busKey(m.p, charging.Group{Feeder: k[0], Bus: k[1]})
		ann = make([]maskAnnounce, n)
		for i, ev := range evs {
			a, err := m.ca.announce(m.p.EVs[ev].ID, m.session, bus, b.pk[i])
			if err != nil {
				return nil, err
			}
			ann[i] = a
		}
		own := slices.Clone(ann)
		for i := range ann {
			if err := m.ca.checkAnnouncements(m.session, bus, ann, i, own[i]); err != nil {
				return nil, err
			}
		}
	}
	th := transcript(b.pk, ann)
	for _, v := range b.veh {
		if err := v.setKeys(list, th); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// pairKey derives the AES key of a pair from one side's private key and
// the other's public key; the info binds the transcript of the bus's key
// list, which holds both public keys in a fixed order.
func pairKey(sk *ecdh.PrivateKey, peer *ecdh.PublicKey, transcript [32]byte) ([]byte, error) {
	shared, err := sk.ECDH(peer)
	if err != nil {
		return nil, fmt.Errorf("masking: %w", err)
	}
	info := append([]byte("gridveil mask v2"), transcript[:]...)
	key, err := hkdf.Key(sha256.New, shared, nil, string(info), 16)
	if err != nil {
		return nil, fmt.Errorf("masking: %w", err)
	}
	return key, nil
}

// keystream fills out with the next words of s, consuming whole 16-byte
// blocks (out's length must be even), by XORing s over zero, a buffer of
// at least len(out) zero words. Words are the keystream's bytes read
// little-endian, on any host.
func keystream(s cipher.Stream, out, zero []uint64) {
	b := unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), 8*len(out))
	z := unsafe.Slice((*byte)(unsafe.Pointer(&zero[0])), 8*len(out))
	s.XORKeyStream(b, z)
	if !littleEndian {
		for i := range out {
			out[i] = bits.ReverseBytes64(out[i])
		}
	}
}

// blockWords is the number of words in the whole AES blocks covering n.
func blockWords(n int) int { return (n + 1) / 2 * 2 }

var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// Name implements Mechanism.
func (*Masking) Name() string { return "masking" }

// Params implements Mechanism.
func (m *Masking) Params() map[string]float64 {
	single := 0.0
	if m.cfg.SingleMask {
		single = 1
	}
	auth := 0.0
	if m.cfg.Authenticate {
		auth = 1
	}
	return map[string]float64{"threshold": float64(m.cfg.Threshold), "drop_rate": m.cfg.DropRate, "single_mask": single, "authenticated": auth, "fixed_scale": FixedScale}
}

// ReportBytes implements Mechanism: the masked vector; with self-masks, the
// seed's shares for the other vehicles of the largest bus and the shares
// revealed in unmasking; and a correction vector in the fraction of
// iterations in which some other vehicle of the bus drops.
func (m *Masking) ReportBytes(slots int) int {
	n := 0
	for _, b := range m.bus {
		n = max(n, b.n)
	}
	bytes := float64(8 * slots)
	if !m.cfg.SingleMask {
		bytes += float64(2 * 8 * seedChunks * max(n-1, 0))
	}
	bytes += float64(8*slots) * (1 - math.Pow(1-m.cfg.DropRate, float64(max(n-1, 0))))
	return int(math.Round(bytes))
}

// Exact implements Mechanism.
func (*Masking) Exact() bool { return true }

// View implements Mechanism.
func (m *Masking) View() *View {
	known := map[string]map[string]float64{}
	for k, b := range m.bus {
		known[busKey(m.p, charging.Group{Feeder: k[0], Bus: k[1]})] = map[string]float64{"n": float64(b.n), "threshold": float64(b.t)}
	}
	return m.rec.view(known, m.Params())
}

// FailedRounds returns how many rounds, summed over buses, could not be
// unmasked because fewer than the threshold of a bus's vehicles answered.
// A failed first round is repeated; a later one leaves the SO its last sum.
func (m *Masking) FailedRounds() int {
	n := 0
	for _, b := range m.bus {
		n += b.failed
	}
	return n
}

// LastDropped returns the positions, in the group's order, of the vehicles
// of a bus left out of the last iteration's sum: their report or their
// correction was lost.
func (m *Masking) LastDropped(feeder, bus int) []int {
	if b := m.bus[[2]int{feeder, bus}]; b != nil {
		return b.lastDrop
	}
	return nil
}

// PublicKeys returns the mask public keys of a bus's vehicles, in the
// group's order (what the LAG relays).
func (m *Masking) PublicKeys(feeder, bus int) [][]byte {
	if b := m.bus[[2]int{feeder, bus}]; b != nil {
		return b.pk
	}
	return nil
}

// Aggregate implements charging.Aggregator: it drives the bus's vehicle
// cores and the SO's core through one iteration in memory, losing each
// message with the configured drop rate (from the seeded generator).
func (m *Masking) Aggregate(iter int, g charging.Group, x []float64, slots int, sum []float64) error {
	b := m.bus[[2]int{g.Feeder, g.Bus}]
	if b == nil || b.n != len(g.EVs) || slots != m.p.Slots {
		return fmt.Errorf("masking: bus %s was not set up for %d vehicles and %d slots", busKey(m.p, g), len(g.EVs), slots)
	}
	var tr *maskRound
	ok, complete, recoveredAny := false, false, false
	var recovered []float64 // the survivors' sum, of the last round that had one
	// Without an earlier complete sum to fall back on, the SO runs the
	// round again, with fresh masks, until every vehicle answers.
	for try := 0; try == 0 || !complete && b.lastFull == nil && try < maxFirstTries; try++ {
		var err error
		tr, err = m.round(b, x, slots)
		if b.trace != nil {
			b.trace(tr)
		}
		if err != nil {
			return fmt.Errorf("%w (bus %s, iteration %d)", err, busKey(m.p, g), iter)
		}
		var res []float64
		res, ok = b.agg.Result()
		if !ok {
			b.failed++
			continue
		}
		recovered = append(recovered[:0], res...)
		recoveredAny = true
		complete = len(b.lastDrop) == 0
	}
	// What it coordinates on: a complete sum. A partial one leaves out the
	// dropped vehicles' load, an error that does not shrink, and the
	// iteration would never settle; the last complete sum is stale by a
	// few iterations, an error that vanishes as the schedules converge.
	switch {
	case complete:
		copy(sum[:slots], recovered)
		b.lastFull = append(b.lastFull[:0], recovered...)
	case b.lastFull != nil:
		copy(sum[:slots], b.lastFull)
	case recoveredAny:
		copy(sum[:slots], recovered) // no complete round yet: the best there is
	default:
		return fmt.Errorf("%w: at bus %s in iteration %d, %d tries in a row had fewer than %d of its %d vehicles answer, and there is no earlier sum to fall back on: lower the drop rate or the threshold", ErrTooFewSurvivors, busKey(m.p, g), iter, maxFirstTries, b.t, b.n)
	}
	if m.rec.on {
		if ok {
			m.rec.masked(iter, g, tr, true, slots, recovered, b.pk)
		} else {
			m.rec.masked(iter, g, tr, false, slots, sum, b.pk)
		}
	}
	return nil
}

// round runs one masking round of a bus: every vehicle reports, the SO
// closes each phase once the messages that were not lost are in, and the
// vehicles answer its requests. Losses are drawn in the order the messages
// would be sent: reports in member order, then each pass's answers, and in
// the seed phase only until t holders answered. The outcome is in b.agg.
func (m *Masking) round(b *maskBus, x []float64, slots int) (*maskRound, error) {
	r := b.round
	b.round++
	lost := func() bool { return m.cfg.DropRate > 0 && b.drop.Float64() < m.cfg.DropRate }
	reps := make([]*MaskedReport, b.n)
	for i, v := range b.veh {
		rep, err := v.Report(r, x[i*slots:(i+1)*slots])
		if err != nil {
			return nil, err
		}
		reps[i] = rep
	}
	if b.tamper != nil {
		b.tamper(reps)
	}
	var tr *maskRound
	if b.trace != nil || m.rec.on {
		tr = &maskRound{reported: make([]bool, b.n), corrections: map[int][]uint64{}}
		for i, rep := range reps {
			tr.y = append(tr.y, slices.Clone(rep.Words))
			tr.seeds = append(tr.seeds, b.veh[i].seed)
		}
	}
	defer func() {
		b.lastDrop = append(b.lastDrop[:0], b.agg.Dropped()...)
		if tr != nil {
			tr.dropped = slices.Clone(b.lastDrop)
			tr.revealed = b.agg.revealed
			if res, ok := b.agg.Result(); ok {
				tr.recovered = slices.Clone(res)
			}
		}
	}()
	if err := b.agg.Begin(r); err != nil {
		return tr, err
	}
	for i, rep := range reps {
		if lost() {
			continue
		}
		if tr != nil {
			tr.reported[i] = true
		}
		if err := b.agg.AddReport(rep); err != nil {
			return tr, err
		}
	}
	reqs, err := b.agg.Close()
	for err == nil && !b.agg.Finished() {
		seeds := b.agg.phase == maskSeeds
		answered := 0
		for k := range reqs {
			if seeds && answered == b.t {
				break
			}
			if lost() {
				continue
			}
			q := &reqs[k]
			a, err := b.veh[q.Index].Answer(q)
			if err != nil {
				return tr, err
			}
			if err := b.agg.AddAnswer(a); err != nil {
				return tr, err
			}
			answered++
			if tr != nil && a.Correction != nil {
				c := tr.corrections[q.Index]
				if c == nil {
					c = make([]uint64, slots)
					tr.corrections[q.Index] = c
				}
				for t, w := range a.Correction {
					c[t] += w
				}
			}
		}
		reqs, err = b.agg.Close()
	}
	return tr, err
}

// seedPRG keys g with a self-mask seed: math/rand/v2's ChaCha8, a
// cryptographically strong generator, keyed by the 16-byte seed
// zero-padded to 32 bytes. Reseeding costs nothing beyond the expansion,
// where a fresh AES-CTR stream costs two allocations and a key schedule,
// and self-masks are fresh every round.
func seedPRG(g *mrand.ChaCha8, seed [16]byte) {
	var key [32]byte
	copy(key[:], seed[:])
	g.Seed(key)
}

// toChunks splits b into len(out) field elements of 7 bytes each
// (zero-padded).
func toChunks(b []byte, out []fe) {
	for c := range out {
		var w [8]byte
		lo := c * 7
		if lo < len(b) {
			copy(w[:7], b[lo:min(lo+7, len(b))])
		}
		out[c] = binary.LittleEndian.Uint64(w[:])
	}
}

// fromChunks is the inverse of toChunks, filling out.
func fromChunks(chunks []fe, out []byte) {
	for c, v := range chunks {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], v)
		copy(out[min(c*7, len(out)):], w[:7])
	}
}
