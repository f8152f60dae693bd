package aggregate

import (
	"cmp"
	"crypto/aes"
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
// pair's keystream is cut into one segment per iteration r:
// PRG(k_ij, r) = AES-CTR_{k_ij} blocks [r B, (r+1) B), B = ceil(T/2).
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
	scratch sync.Pool // *maskScratch: per-iteration state, one per worker
}

// maskBus is what persists of a bus between iterations.
type maskBus struct {
	n, t     int
	pk       [][]byte
	stream   []cipher.Stream // per pair (i < j), at pairIndex: AES-CTR keyed by k_ij, one segment per round
	drop     *mrand.Rand     // simulated network losses; seeded
	lastDrop []int           // vehicles (group order) left out of the last round's sum
	lastFull []float64       // the last complete sum the SO recovered
	failed   int             // rounds in which too few vehicles remained
	trace    func(*maskRound)
	tamper   func(y []uint64) // tests only: alters reports in transit
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

// maskScratch holds one worker's per-iteration buffers and generators, so
// that the hot loops touch memory that stays in cache rather than per-bus
// allocations spread over the heap.
type maskScratch struct {
	csprng             *mrand.ChaCha8 // self-mask seeds and share polynomials; seeded from crypto/rand
	prg                mrand.ChaCha8  // self-mask expansion, reseeded per mask
	y, seg, total      []uint64
	recovered          []float64
	zero               []uint64 // keystream input: XORKeyStream over zeros
	seeds              [][16]byte
	shr                []fe // shr[(h*n+i)*seedChunks+c]: vehicle h's share of chunk c of b_i
	coef, evals        []fe
	revealed           []byte // per vehicle this round: 'c' (masks with it revealed) or 'b' (its seed)
	survivors, dropped []int
	answered           []int
	holders            []int
	xs                 []uint64
	w                  []fe // Lagrange weights of holders, cached while holders repeat
}

const seedChunks = 3 // 16-byte seed in 7-byte field chunks

// maxFirstTries bounds how often the SO repeats a bus's first round.
const maxFirstTries = 20

// NewMasking runs the set-up round for every bus: key pairs and pairwise
// keys. Its cost is O(n_b^2) X25519 operations per bus.
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
	// Set buses up in the solver's order, (feeder, bus), so that the pair
	// streams, allocated one after another, lie in memory in the order the
	// iterations read them.
	keys := slices.SortedFunc(maps.Keys(gs), func(a, b [2]int) int {
		return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
	})
	// Buses set up independently, on every core: at 10^5 vehicles with
	// certificates this is a minute of work on one. Each worker takes
	// buses in order, so a bus's streams still lie back to back.
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

func (m *Masking) setup(k [2]int, evs []int) (*maskBus, error) {
	n := len(evs)
	t := m.cfg.Threshold
	if t == 0 {
		t = max(n/2+1, min(2, n))
	}
	if t < 1 || t > n {
		return nil, fmt.Errorf("masking: threshold %d must be in 1..%d, the vehicles at bus %s: lower it, or use 0 for a majority of each bus", t, n, busKey(m.p, charging.Group{Feeder: k[0], Bus: k[1]}))
	}
	b := &maskBus{
		n: n, t: t,
		pk:     make([][]byte, n),
		stream: make([]cipher.Stream, n*(n-1)/2),
		drop:   mrand.New(mrand.NewPCG(m.seed^uint64(k[0])<<20^uint64(k[1]), 0x64726f70)),
	}
	sk := make([]*ecdh.PrivateKey, n)
	for i := range sk {
		key, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("masking: %w", err)
		}
		sk[i], b.pk[i] = key, key.PublicKey().Bytes()
	}
	var list []maskAnnounce // what the LAG relays
	if m.ca != nil {
		bus := busKey(m.p, charging.Group{Feeder: k[0], Bus: k[1]})
		list = make([]maskAnnounce, n)
		for i, ev := range evs {
			a, err := m.ca.announce(m.p.EVs[ev].ID, m.session, bus, b.pk[i])
			if err != nil {
				return nil, err
			}
			list[i] = a
		}
		own := slices.Clone(list)
		for i := range list {
			if err := m.ca.checkAnnouncements(m.session, bus, list, i, own[i]); err != nil {
				return nil, err
			}
		}
	}
	th := transcript(b.pk, list)
	blocks := make([]cipher.Block, len(b.stream))
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			pub, err := ecdh.X25519().NewPublicKey(b.pk[j])
			if err != nil {
				return nil, fmt.Errorf("masking: %w", err)
			}
			blk, err := pairBlock(sk[i], pub, th)
			if err != nil {
				return nil, err
			}
			blocks[pairIndex(i, j, n)] = blk
		}
	}
	// The streams are made one after another, with no other allocation
	// between them, so that a bus's lie next to each other in memory (each
	// holds its own copy of the key schedule) and the iterations read them
	// as one sweep.
	var iv [aes.BlockSize]byte // each pair's keystream starts at segment 0
	for p, blk := range blocks {
		b.stream[p] = cipher.NewCTR(blk, iv[:])
	}
	return b, nil
}

// pairIndex numbers the pairs i < j of n vehicles row by row.
func pairIndex(i, j, n int) int { return i*(2*n-i-1)/2 + j - i - 1 }

// pairBlock derives the AES key of a pair from one side's private key and
// the other's public key; the info binds the transcript of the bus's key
// list, which holds both public keys in a fixed order.
func pairBlock(sk *ecdh.PrivateKey, peer *ecdh.PublicKey, transcript [32]byte) (cipher.Block, error) {
	shared, err := sk.ECDH(peer)
	if err != nil {
		return nil, fmt.Errorf("masking: %w", err)
	}
	info := append([]byte("gridveil mask v2"), transcript[:]...)
	key, err := hkdf.Key(sha256.New, shared, nil, string(info), 16)
	if err != nil {
		return nil, fmt.Errorf("masking: %w", err)
	}
	return aes.NewCipher(key)
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

// getScratch returns a worker's buffers sized for n vehicles, slots slots.
func (m *Masking) getScratch(n, slots int) (*maskScratch, error) {
	s, _ := m.scratch.Get().(*maskScratch)
	if s == nil {
		var seed [32]byte
		if _, err := rand.Read(seed[:]); err != nil {
			return nil, fmt.Errorf("masking: %w", err)
		}
		s = &maskScratch{csprng: mrand.NewChaCha8(seed)}
	}
	words := blockWords(slots)
	grow := func(b []uint64, k int) []uint64 {
		if cap(b) < k {
			return make([]uint64, k)
		}
		return b[:k]
	}
	s.y = grow(s.y, n*slots)
	s.seg = grow(s.seg, n*(n-1)/2*words)
	s.total = grow(s.total, slots)
	if cap(s.recovered) < slots {
		s.recovered = make([]float64, slots)
	}
	if len(s.zero) < words {
		s.zero = make([]uint64, words)
	}
	if len(s.seeds) < n {
		s.seeds = make([][16]byte, n)
		s.shr = make([]fe, n*n*seedChunks)
		s.coef = make([]fe, n)
		s.evals = make([]fe, n)
		s.revealed = make([]byte, n)
	}
	return s, nil
}

// Aggregate implements charging.Aggregator: both the vehicles' side
// (masking) and the SO's (unmasking, with dropout recovery).
func (m *Masking) Aggregate(iter int, g charging.Group, x []float64, slots int, sum []float64) error {
	b := m.bus[[2]int{g.Feeder, g.Bus}]
	if b == nil || b.n != len(g.EVs) {
		return fmt.Errorf("masking: bus %s was not set up for %d vehicles", busKey(m.p, g), len(g.EVs))
	}
	s, err := m.getScratch(b.n, slots)
	if err != nil {
		return err
	}
	defer m.scratch.Put(s)
	var tr *maskRound
	ok, complete, recoveredAny := false, false, false
	recovered := s.recovered[:slots] // the survivors' sum, of the last round that had one
	// Without an earlier complete sum to fall back on, the SO runs the
	// round again, with fresh masks, until every vehicle answers.
	for try := 0; try == 0 || !complete && b.lastFull == nil && try < maxFirstTries; try++ {
		m.report(b, s, x, slots)
		if b.tamper != nil {
			b.tamper(s.y[:b.n*slots])
		}
		if b.trace != nil || m.rec.on {
			tr = &maskRound{seeds: slices.Clone(s.seeds[:b.n]), revealed: map[int][16]byte{}, corrections: map[int][]uint64{}}
			for i := 0; i < b.n; i++ {
				tr.y = append(tr.y, slices.Clone(s.y[i*slots:(i+1)*slots]))
			}
		}
		ok, err = m.unmask(b, s, slots, tr)
		if b.trace != nil {
			b.trace(tr)
		}
		if err != nil {
			return err
		}
		if !ok {
			b.failed++
			continue
		}
		limit := MaxPlausibleKW * float64(b.n)
		for t, v := range s.total {
			recovered[t] = decode64(v)
			if math.Abs(recovered[t]) > limit {
				return fmt.Errorf("%w at bus %s in iteration %d: slot %d sums to %.3g kW from %d vehicles; they derived different pair keys (was each shown the same key list?) or a report was altered", ErrMasksDoNotCancel, busKey(m.p, g), iter, t, recovered[t], b.n)
			}
		}
		if tr != nil {
			tr.recovered = slices.Clone(recovered)
		}
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
	if ok {
		m.rec.masked(iter, g, tr, true, slots, recovered, b.pk)
	} else {
		m.rec.masked(iter, g, tr, false, slots, sum, b.pk)
	}
	return nil
}

// report is the vehicles' side of phase 1: every vehicle's masked report
// into s.y, its self-mask seed shares into s.shr, and every pair's segment
// of this round into s.seg (each vehicle keeps its own for phase 2). Every
// pair's stream moves on by exactly one segment per call, whatever happens
// in unmasking, which keeps the two ends of each pair in step.
func (m *Masking) report(b *maskBus, s *maskScratch, x []float64, slots int) {
	n := b.n
	y := s.y
	for i := 0; i < n; i++ {
		row, out := x[i*slots:(i+1)*slots], y[i*slots:(i+1)*slots]
		out = out[:len(row)]
		if m.cfg.SingleMask {
			for t, v := range row {
				out[t] = encode64(v)
			}
			continue
		}
		// A fresh self-mask seed, shared among the bus, expanded straight
		// into the report.
		s.csprng.Read(s.seeds[i][:])
		m.shareSeed(b, s, i)
		seedPRG(&s.prg, s.seeds[i])
		for t, v := range row {
			out[t] = encode64(v) + s.prg.Uint64()
		}
	}
	words := blockWords(slots)
	p := 0
	for i := 0; i < n; i++ {
		yi := y[i*slots : (i+1)*slots]
		for j := i + 1; j < n; j++ {
			seg := s.seg[p*words : (p+1)*words]
			keystream(b.stream[p], seg, s.zero)
			yj := y[j*slots : (j+1)*slots]
			yj = yj[:len(yi)]
			for t, v := range seg[:len(yi)] {
				yi[t] += v
				yj[t] -= v
			}
			p++
		}
	}
}

// shareSeed Shamir-shares vehicle i's self-mask seed among the bus.
func (m *Masking) shareSeed(b *maskBus, s *maskScratch, i int) {
	n := b.n
	var chunks [seedChunks]fe
	toChunks(s.seeds[i][:], chunks[:])
	for c, v := range chunks {
		split(v, b.t, n, s.csprng.Uint64, s.coef, s.evals[:n])
		for h, e := range s.evals[:n] {
			s.shr[(h*n+i)*seedChunks+c] = e
		}
	}
}

// unmask is the network and the SO's side, phases 1 to 3. It leaves the
// survivors' sum in s.total and reports true, or reports false when fewer
// than the threshold of vehicles remain. tr, when not nil, receives what
// passed.
func (m *Masking) unmask(b *maskBus, s *maskScratch, slots int, tr *maskRound) (bool, error) {
	n, y := b.n, s.y
	clear(s.revealed[:n]) // what honest vehicles revealed this round
	lost := func() bool { return m.cfg.DropRate > 0 && b.drop.Float64() < m.cfg.DropRate }

	// Phase 1: some reports are lost.
	survivors, dropped := s.survivors[:0], s.dropped[:0]
	for i := 0; i < n; i++ {
		if lost() {
			dropped = append(dropped, i)
		} else {
			survivors = append(survivors, i)
		}
	}
	if tr != nil {
		tr.reported = make([]bool, n)
		for _, i := range survivors {
			tr.reported[i] = true
		}
	}
	defer func() {
		s.survivors, s.dropped = survivors, dropped
		b.lastDrop = append(b.lastDrop[:0], dropped...)
		if tr != nil {
			tr.dropped = slices.Clone(dropped)
		}
	}()
	if len(survivors) < b.t {
		return false, nil
	}
	total := s.total
	clear(total)
	for _, i := range survivors {
		yi := y[i*slots : (i+1)*slots]
		yi = yi[:len(total)]
		for t, v := range yi {
			total[t] += v
		}
	}

	// Phase 2: corrections for the dropped, until every survivor answered.
	// done counts the dropped vehicles whose masks every current survivor
	// has corrected.
	for done := 0; done < len(dropped); {
		pending := dropped[done:]
		for _, j := range pending {
			if s.revealed[j] == 'b' {
				return false, ErrRefused
			}
			s.revealed[j] = 'c'
		}
		answered, next := s.answered[:0], len(dropped)
		for _, i := range survivors {
			if lost() {
				// i's correction is lost: i leaves the sum, with the
				// corrections it sent in earlier passes, and the others
				// must now reveal their masks with it too.
				yi := y[i*slots : (i+1)*slots]
				for t, v := range yi[:len(total)] {
					total[t] -= v
				}
				s.correct(total, n, slots, i, dropped[:done], true)
				dropped = append(dropped, i)
				continue
			}
			answered = append(answered, i)
			s.correct(total, n, slots, i, dropped[done:next], false)
			if tr != nil {
				c := tr.corrections[i]
				if c == nil {
					c = make([]uint64, slots)
					tr.corrections[i] = c
				}
				s.correct(c, n, slots, i, dropped[done:next], true)
			}
		}
		s.answered = answered
		survivors = append(survivors[:0], answered...)
		if len(survivors) < b.t {
			return false, nil
		}
		done = next
	}
	if m.cfg.SingleMask {
		return true, nil
	}

	// Phase 3: the survivors' self-masks, from t answering holders' shares.
	holders := s.holders[:0]
	for _, h := range survivors {
		if len(holders) == b.t {
			break
		}
		if !lost() {
			holders = append(holders, h)
		}
	}
	s.holders = holders
	if len(holders) < b.t {
		return false, nil
	}
	w, err := s.weights(holders)
	if err != nil {
		return false, err
	}
	for _, i := range survivors {
		seed, err := s.recoverSeed(i, n, holders, w)
		if err != nil {
			return false, err
		}
		if tr != nil {
			tr.revealed[i] = seed
		}
		seedPRG(&s.prg, seed)
		for t := range total {
			total[t] -= s.prg.Uint64()
		}
	}
	return true, nil
}

// correct subtracts from acc what vehicle i added to its report for its
// masks with each of js: +PRG(k_ij) for a partner above it, -PRG for one
// below. With undo it adds them instead, which is also i's correction
// vector as it sends it.
func (s *maskScratch) correct(acc []uint64, n, slots, i int, js []int, undo bool) {
	words := blockWords(slots)
	acc = acc[:slots]
	for _, j := range js {
		seg := s.seg[pairIndex(min(i, j), max(i, j), n)*words:]
		seg = seg[:len(acc)]
		if (i < j) != undo {
			for t, v := range seg {
				acc[t] -= v
			}
		} else {
			for t, v := range seg {
				acc[t] += v
			}
		}
	}
}

// weights returns the Lagrange weights at zero for the holders' share
// points, reusing the last ones when the holders are the same (the usual
// case: no dropouts, the first t vehicles).
func (s *maskScratch) weights(holders []int) ([]fe, error) {
	if len(s.xs) == len(holders) && s.w != nil {
		same := true
		for k, h := range holders {
			same = same && s.xs[k] == uint64(h+1)
		}
		if same {
			return s.w, nil
		}
	}
	s.xs = s.xs[:0]
	for _, h := range holders {
		s.xs = append(s.xs, uint64(h+1))
	}
	w, err := lagrangeAtZero(s.xs)
	if err != nil {
		s.w = nil
		return nil, err
	}
	s.w = w
	return w, nil
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

// recoverSeed reconstructs b_i from the holders' shares, as the SO does;
// the holders refuse if they revealed their masks with i this round.
func (s *maskScratch) recoverSeed(i, n int, holders []int, w []fe) ([16]byte, error) {
	if s.revealed[i] == 'c' {
		return [16]byte{}, ErrRefused
	}
	s.revealed[i] = 'b'
	var chunks [seedChunks]fe
	for c := range chunks {
		for k, h := range holders {
			chunks[c] = fadd(chunks[c], fmul(w[k], s.shr[(h*n+i)*seedChunks+c]))
		}
	}
	var seed [16]byte
	fromChunks(chunks[:], seed[:])
	return seed, nil
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
