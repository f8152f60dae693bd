package aggregate

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	mrand "math/rand/v2"
	"unsafe"

	"github.com/gridveil/gridveil/charging"
)

// MaskingConfig parameterises pairwise-mask secure aggregation.
type MaskingConfig struct {
	// Threshold is how many of a bus's vehicles must survive an iteration
	// for its sum to be recovered, and how many colluding vehicles it
	// takes to learn a key. 0 means a majority: floor(n/2) + 1 (at least 2
	// on buses of two or more).
	Threshold int
	// DropRate is the probability that a vehicle's report is lost in an
	// iteration (the simulation of dropouts), from the seeded generator.
	DropRate float64
	// SingleMask leaves out the per-iteration self-masks (double masking).
	// That is safe only against an SO that follows the protocol and a
	// network that delivers on time: without self-masks, an SO that
	// claims a vehicle dropped, or that reads a report arriving after the
	// vehicle was declared dropped, unmasks that report. It saves two
	// fresh AES-CTR streams per vehicle per iteration.
	SingleMask bool
}

// ErrTooFewSurvivors is returned when fewer than the threshold of a bus's
// vehicles reported in an iteration, so its sum cannot be unmasked.
var ErrTooFewSurvivors = errors.New("masking: too few vehicles survived to unmask the bus sum")

// ErrRefused is returned when the SO asks an honest vehicle for both the
// self-mask share and the key share of the same vehicle in one round: the
// two together would unmask that vehicle's report.
var ErrRefused = errors.New("masking: honest vehicle refuses to reveal both shares of one vehicle")

// Masking is secure aggregation by pairwise masks with double masking, after
// Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving
// Machine Learning" (CCS 2017), run per bus and per iteration.
//
// Set-up, once per bus: every vehicle i makes an X25519 key pair (s_i,
// S_i); the LAG relays the public keys; each pair derives
// k_ij = HKDF-SHA256(X25519(s_i, S_j)) and an AES-128-CTR stream from it.
// Vehicle i splits s_i into Shamir shares (threshold t, in GF(2^61-1)) for
// the other vehicles of its bus.
//
// Every iteration: vehicle i draws a fresh self-mask seed b_i (crypto
// quality), shares it the same way, expands it with ChaCha8, and sends
//
//	y_i = enc(x_i) + PRG(b_i) + sum_{j>i} PRG(k_ij) - sum_{j<i} PRG(k_ij)  in Z_2^64
//
// with enc the fixed-point encoding of FixedScale. The SO adds the y of the
// survivors U; pairwise masks between survivors cancel. For each survivor
// it collects t shares of b_i and removes PRG(b_i); for each vehicle j that
// dropped it collects t shares of s_j, recomputes k_ij for every survivor
// and removes those masks. The result is sum_{i in U} x_i exactly, up to
// fixed-point rounding. A dropped vehicle rejoins with a fresh key pair,
// because its s_j is now known to the SO.
//
// What it protects against: an honest-but-curious SO, or an eavesdropper on
// any link, sees each y_i uniformly distributed in Z_2^64^T whatever x_i is
// (PRG security of AES-CTR and ChaCha8, CDH in X25519): it learns the bus sum and
// nothing else. Fewer than t colluding vehicles learn no key of another. An
// SO that claims a survivor dropped, to learn its s_i after holding its
// y_i, is refused: an honest vehicle never reveals both the b-share and the
// s-share of one vehicle in one round (ErrRefused). Not protected: the SO
// colluding with all but one vehicle of a bus learns the last one's x from
// the sum (inherent in any exact sum); an active LAG that substitutes public
// keys (keys must be authenticated, which is C6's job); a bus with a single
// vehicle (its sum is its schedule).
type Masking struct {
	cfg  MaskingConfig
	p    *charging.Problem
	seed uint64
	bus  map[[2]int]*maskBus
	rec  recorder
}

type maskBus struct {
	n, t               int
	sk                 []*ecdh.PrivateKey
	pk                 [][]byte
	block              [][]cipher.Block  // block[i][j], i < j: AES keyed by k_ij
	stream             [][]cipher.Stream // the pair's keystream, consumed in lockstep
	keyShr             [][][keyChunks]fe // keyShr[j][i]: vehicle j's share of s_i
	epoch              []int             // key generation of each vehicle
	round              int               // iterations run, including the initial one
	csprng             *mrand.ChaCha8    // seeds and polynomial coefficients; seeded from crypto/rand
	prg                mrand.ChaCha8     // self-mask expansion, reseeded per mask
	drop               *mrand.Rand       // simulated network losses; seeded
	y, tmp             []uint64
	lastDrop           []int     // vehicles (group order) whose reports were lost in the last round
	lastSum            []float64 // the last sum the SO recovered
	failed             int       // rounds in which too few vehicles reported
	coef               []fe
	shr                []fe
	total              []uint64
	survivors, dropped []int
	revealed           map[int]byte
	selfShr            [][][seedChunks]fe // selfShr[j][i]: vehicle j's share of b_i this round
	seeds              [][16]byte
}

const (
	keyChunks  = 5 // 32-byte X25519 scalar in 7-byte field chunks
	seedChunks = 3 // 16-byte AES seed in 7-byte chunks
)

// NewMasking runs the set-up round for every bus: key pairs, pairwise keys
// and key shares. Its cost is O(n_b^2) X25519 operations per bus.
func NewMasking(p *charging.Problem, cfg MaskingConfig, seed uint64, record bool) (*Masking, error) {
	if cfg.DropRate < 0 || cfg.DropRate >= 1 {
		return nil, fmt.Errorf("masking: drop rate %v must be in [0, 1)", cfg.DropRate)
	}
	m := &Masking{cfg: cfg, p: p, seed: seed, bus: map[[2]int]*maskBus{}, rec: newRecorder(p, "masking", record, 1)}
	for k, evs := range groups(p) {
		b, err := m.setup(k, len(evs))
		if err != nil {
			return nil, err
		}
		m.bus[k] = b
	}
	return m, nil
}

func (m *Masking) setup(k [2]int, n int) (*maskBus, error) {
	t := m.cfg.Threshold
	if t == 0 {
		t = max(n/2+1, min(2, n))
	}
	if t < 1 || t > n {
		return nil, fmt.Errorf("masking: threshold %d must be in 1..%d (the vehicles at bus %v)", t, n, k)
	}
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("masking: %w", err)
	}
	b := &maskBus{
		n: n, t: t,
		sk: make([]*ecdh.PrivateKey, n), pk: make([][]byte, n),
		block: make([][]cipher.Block, n), stream: make([][]cipher.Stream, n),
		keyShr: make([][][keyChunks]fe, n), epoch: make([]int, n),
		csprng: mrand.NewChaCha8(seed),
		drop:   mrand.New(mrand.NewPCG(m.seed^uint64(k[0])<<20^uint64(k[1]), 0x64726f70)),
		coef:   make([]fe, t), shr: make([]fe, n), revealed: map[int]byte{}, selfShr: make([][][seedChunks]fe, n), seeds: make([][16]byte, n),
	}
	for i := range b.block {
		b.block[i] = make([]cipher.Block, n)
		b.stream[i] = make([]cipher.Stream, n)
		b.keyShr[i] = make([][keyChunks]fe, n)
		b.selfShr[i] = make([][seedChunks]fe, n)
	}
	for i := 0; i < n; i++ {
		if err := b.newKey(i); err != nil {
			return nil, err
		}
	}
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			if err := b.pairKey(i, j); err != nil {
				return nil, err
			}
		}
	}
	return b, nil
}

// newKey gives vehicle i a fresh X25519 key pair and shares its private key
// among the bus.
func (b *maskBus) newKey(i int) error {
	sk, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("masking: %w", err)
	}
	b.sk[i], b.pk[i] = sk, sk.PublicKey().Bytes()
	b.epoch[i]++
	chunks := toChunks(sk.Bytes(), keyChunks)
	out := make([]fe, b.n)
	for c, v := range chunks {
		split(v, b.t, b.n, b.csprng.Uint64, b.coef, out)
		for j := 0; j < b.n; j++ {
			b.keyShr[j][i][c] = out[j]
		}
	}
	return nil
}

// pairKey derives k_ij for i < j and starts their keystream at the current
// round.
func (b *maskBus) pairKey(i, j int) error {
	pub, err := ecdh.X25519().NewPublicKey(b.pk[j])
	if err != nil {
		return fmt.Errorf("masking: %w", err)
	}
	blk, err := pairBlock(b.sk[i], pub, b.pk[i], b.pk[j])
	if err != nil {
		return err
	}
	b.block[i][j] = blk
	b.stream[i][j] = nil // made on first use at the right offset
	return nil
}

// pairBlock derives the AES key of a pair from one side's private key and
// the other's public key; the info binds both public keys in a fixed order.
func pairBlock(sk *ecdh.PrivateKey, peer *ecdh.PublicKey, pkLow, pkHigh []byte) (cipher.Block, error) {
	shared, err := sk.ECDH(peer)
	if err != nil {
		return nil, fmt.Errorf("masking: %w", err)
	}
	info := append(append([]byte("gridveil mask v1"), pkLow...), pkHigh...)
	key, err := hkdf.Key(sha256.New, shared, nil, string(info), 16)
	if err != nil {
		return nil, fmt.Errorf("masking: %w", err)
	}
	return aes.NewCipher(key)
}

// ctrAt returns AES-CTR positioned at the start of round r's mask of words
// words (each round uses whole 16-byte blocks).
func ctrAt(blk cipher.Block, r, words int) cipher.Stream {
	blocks := uint64((words*8 + 15) / 16)
	var iv [16]byte
	binary.BigEndian.PutUint64(iv[8:], uint64(r)*blocks)
	return cipher.NewCTR(blk, iv[:])
}

// keystream fills out with the next words of s, consuming whole 16-byte
// blocks: out must have capacity for them (blockWords). Words are the
// keystream's bytes read little-endian, on any host.
func keystream(s cipher.Stream, out []uint64) {
	n := blockWords(len(out))
	w := out[:n]
	clear(w)
	b := unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), 8*n)
	s.XORKeyStream(b, b)
	if !littleEndian {
		for i := range w {
			w[i] = bits.ReverseBytes64(w[i])
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
	return map[string]float64{"threshold": float64(m.cfg.Threshold), "drop_rate": m.cfg.DropRate, "single_mask": single, "fixed_scale": FixedScale}
}

// ReportBytes implements Mechanism: the masked vector, the self-mask seed's
// shares for the other vehicles of a typical bus, and the shares revealed
// in unmasking.
func (m *Masking) ReportBytes(slots int) int {
	n := 0
	for _, b := range m.bus {
		n = max(n, b.n)
	}
	return 8*slots + 2*8*seedChunks*max(n-1, 0)
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

// FailedRounds returns how many iterations a bus could not be unmasked in
// because fewer than the threshold of its vehicles reported.
func (m *Masking) FailedRounds() int {
	n := 0
	for _, b := range m.bus {
		n += b.failed
	}
	return n
}

// LastDropped returns the positions, in the group's order, of the vehicles
// of a bus whose reports were lost in the last iteration.
func (m *Masking) LastDropped(feeder, bus int) []int {
	if b := m.bus[[2]int{feeder, bus}]; b != nil {
		return b.lastDrop
	}
	return nil
}

// PublicKeys returns the current mask public keys of a bus's vehicles, in
// the group's order (what the LAG relays).
func (m *Masking) PublicKeys(feeder, bus int) [][]byte {
	if b := m.bus[[2]int{feeder, bus}]; b != nil {
		return b.pk
	}
	return nil
}

// Aggregate implements charging.Aggregator: both the vehicles' side
// (masking) and the SO's (unmasking, with dropout recovery).
func (m *Masking) Aggregate(iter int, g charging.Group, x []float64, slots int, sum []float64) error {
	b := m.bus[[2]int{g.Feeder, g.Bus}]
	if b == nil || b.n != len(g.EVs) {
		return fmt.Errorf("masking: bus %s was not set up for %d vehicles", busKey(m.p, g), len(g.EVs))
	}
	n := b.n
	if len(b.y) < n*slots {
		b.y = make([]uint64, n*slots)
		b.tmp = make([]uint64, blockWords(slots))
	}
	y, tmp := b.y[:n*slots], b.tmp[:slots]

	// Vehicles' side.
	for i := 0; i < n; i++ {
		row, out := x[i*slots:(i+1)*slots], y[i*slots:(i+1)*slots]
		for t, v := range row {
			out[t] = encode64(v)
		}
		if m.cfg.SingleMask {
			continue
		}
		// Fresh self-mask seed, shared among the bus.
		b.csprng.Read(b.seeds[i][:])
		chunks := toChunks(b.seeds[i][:], seedChunks)
		shr := b.shr[:n]
		for c, v := range chunks {
			split(v, b.t, n, b.csprng.Uint64, b.coef, shr)
			for j := 0; j < n; j++ {
				b.selfShr[j][i][c] = shr[j]
			}
		}
		selfMask(&b.prg, b.seeds[i], tmp)
		for t := range out {
			out[t] += tmp[t]
		}
	}
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			if b.stream[i][j] == nil {
				b.stream[i][j] = ctrAt(b.block[i][j], b.round, slots)
			}
			keystream(b.stream[i][j], tmp)
			yi, yj := y[i*slots:(i+1)*slots], y[j*slots:(j+1)*slots]
			for t, v := range tmp {
				yi[t] += v
				yj[t] -= v
			}
		}
	}
	// The network: some reports are lost.
	survivors, dropped := b.survivors[:0], b.dropped[:0]
	for i := 0; i < n; i++ {
		if m.cfg.DropRate == 0 || b.drop.Float64() >= m.cfg.DropRate {
			survivors = append(survivors, i)
		} else {
			dropped = append(dropped, i)
		}
	}
	b.survivors, b.dropped = survivors, dropped
	b.lastDrop = dropped
	if len(survivors) < b.t {
		// The SO cannot unmask this round. Nothing was revealed, so no key
		// changes; the keystreams moved on, and so does the round. The SO
		// keeps the bus's last sum for this iteration (stale by one), which
		// the primal-dual iteration absorbs like any perturbation.
		b.round++
		b.failed++
		if b.lastSum == nil {
			return fmt.Errorf("%w: %d of %d at bus %s reported in iteration %d, threshold %d, and there is no earlier sum to fall back on", ErrTooFewSurvivors, len(survivors), n, busKey(m.p, g), iter, b.t)
		}
		copy(sum[:slots], b.lastSum)
		return nil
	}

	// SO's side.
	if len(b.total) < slots {
		b.total = make([]uint64, slots)
	}
	total := b.total[:slots]
	clear(total)
	for _, i := range survivors {
		for t, v := range y[i*slots : (i+1)*slots] {
			total[t] += v
		}
	}
	holders := survivors[:b.t] // whose shares the SO asks for
	xs := make([]uint64, len(holders))
	for k, h := range holders {
		xs[k] = uint64(h + 1)
	}
	w, err := lagrangeAtZero(xs) // once per round: the holders do not change
	if err != nil {
		return err
	}
	revealed := b.revealed
	clear(revealed)
	for _, i := range survivors {
		if m.cfg.SingleMask {
			break
		}
		seed, err := b.recoverSeed(i, holders, w, revealed)
		if err != nil {
			return err
		}
		selfMask(&b.prg, seed, tmp)
		for t, v := range tmp {
			total[t] -= v
		}
	}
	for _, j := range dropped {
		sk, err := b.recoverKey(j, holders, w, revealed)
		if err != nil {
			return err
		}
		for _, i := range survivors {
			lo, hi := min(i, j), max(i, j)
			pub, err := ecdh.X25519().NewPublicKey(b.pk[i])
			if err != nil {
				return fmt.Errorf("masking: %w", err)
			}
			blk, err := pairBlock(sk, pub, b.pk[lo], b.pk[hi])
			if err != nil {
				return err
			}
			keystream(ctrAt(blk, b.round, slots), tmp)
			// i added +PRG if i < j, -PRG if i > j; undo it.
			for t, v := range tmp {
				if i < j {
					total[t] -= v
				} else {
					total[t] += v
				}
			}
		}
	}
	for t, v := range total {
		sum[t] = decode64(v)
	}
	b.lastSum = append(b.lastSum[:0], sum[:slots]...)
	m.rec.ints(iter, g, y, slots, sum)
	b.round++
	// Dropped vehicles rejoin with new keys: the SO now knows their old ones.
	for _, j := range dropped {
		if err := b.newKey(j); err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			if i != j {
				if err := b.pairKey(min(i, j), max(i, j)); err != nil {
					return err
				}
			}
		}
	}
	// Persistent streams of untouched pairs stay in lockstep; re-keyed
	// pairs start at the next round (pairKey cleared them).
	return nil
}

// selfMask expands a self-mask seed into words with ChaCha8 (math/rand/v2's
// cryptographically strong generator, keyed by the 16-byte seed
// zero-padded to 32 bytes), reseeding g instead of allocating a new
// generator. A fresh ChaCha8 costs about half of a fresh AES-CTR stream,
// and self-masks are fresh every round.
func selfMask(g *mrand.ChaCha8, seed [16]byte, out []uint64) {
	var key [32]byte
	copy(key[:], seed[:])
	g.Seed(key)
	for i := range out {
		out[i] = g.Uint64()
	}
}

// recoverSeed reconstructs b_i from the holders' shares, as the SO does;
// each holder checks it has not revealed i's key share this round.
func (b *maskBus) recoverSeed(i int, holders []int, w []fe, revealed map[int]byte) ([16]byte, error) {
	if revealed[i] == 's' {
		return [16]byte{}, ErrRefused
	}
	revealed[i] = 'b'
	var chunks [seedChunks]fe
	for c := range chunks {
		for k, h := range holders {
			chunks[c] = fadd(chunks[c], fmul(w[k], b.selfShr[h][i][c]))
		}
	}
	var seed [16]byte
	copy(seed[:], fromChunks(chunks[:], 16))
	return seed, nil
}

// recoverKey reconstructs the private mask key of a vehicle that dropped.
func (b *maskBus) recoverKey(j int, holders []int, w []fe, revealed map[int]byte) (*ecdh.PrivateKey, error) {
	if revealed[j] == 'b' {
		return nil, ErrRefused
	}
	revealed[j] = 's'
	var chunks [keyChunks]fe
	for c := range chunks {
		for k, h := range holders {
			chunks[c] = fadd(chunks[c], fmul(w[k], b.keyShr[h][j][c]))
		}
	}
	sk, err := ecdh.X25519().NewPrivateKey(fromChunks(chunks[:], 32))
	if err != nil {
		return nil, fmt.Errorf("masking: reconstructed key: %w", err)
	}
	return sk, nil
}

// toChunks splits b into n field elements of 7 bytes each (zero-padded).
func toChunks(b []byte, n int) []fe {
	out := make([]fe, n)
	for c := range out {
		var w [8]byte
		lo := c * 7
		if lo < len(b) {
			copy(w[:7], b[lo:min(lo+7, len(b))])
		}
		out[c] = binary.LittleEndian.Uint64(w[:])
	}
	return out
}

// fromChunks is the inverse of toChunks for a byte string of length size.
func fromChunks(chunks []fe, size int) []byte {
	out := make([]byte, 0, 7*len(chunks))
	for _, v := range chunks {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], v)
		out = append(out, w[:7]...)
	}
	return out[:size]
}
