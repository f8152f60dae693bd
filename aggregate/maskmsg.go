package aggregate

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/gridveil/gridveil/charging"
)

// The messages of masking between a bus's vehicles and the SO (the
// aggregator), as they cross a party boundary. They follow charging's
// encoding (docs/PLATFORM.md):
//
//	magic 'G' 'V', kind (1 byte), version (1 byte), then the fields in
//	the order of the struct: integers as zig-zag varints, strings and
//	byte strings as a uvarint length and the bytes, word vectors as a
//	uvarint length and 8-byte little-endian words, index lists as a
//	uvarint length and uvarints.
//
// Kinds 0x10-0x14 sit beside charging's 1-3 so that a message sent on the
// wrong subject is refused by its kind. Decoders check every length
// against MaxMaskMembers and charging.MaxSlots before allocating, refuse
// trailing bytes, index lists that are not strictly increasing, share
// values outside GF(P), and return ErrBadMaskMessage (wrapped with what is
// wrong) on any other input.

// MaskMessageVersion is the encoding version of the masking messages.
const MaskMessageVersion = 1

// Limits on what a masking decoder accepts.
const (
	// MaxMaskMembers bounds the vehicles of one bus. A report carries
	// three share words per member, a request three per owner.
	MaxMaskMembers = 4096
	// MaxMaskMessageSize bounds an encoded masking message: a report of
	// charging.MaxSlots words with shares for MaxMaskMembers members.
	MaxMaskMessageSize = 8*(charging.MaxSlots+seedChunks*MaxMaskMembers) + 4*MaxMaskMembers + 256
)

// Message kinds on the wire.
const (
	kindMaskKey     byte = 0x10
	kindMaskKeys    byte = 0x11
	kindMaskReport  byte = 0x12
	kindMaskRequest byte = 0x13
	kindMaskAnswer  byte = 0x14
)

// ErrBadMaskMessage is wrapped by every decoding error of a masking
// message.
var ErrBadMaskMessage = errors.New("malformed masking message")

// MaskKey is a vehicle's key advertisement: its X25519 mask public key
// for this bus, sent once before the coordination starts.
type MaskKey struct {
	Feeder, Bus int
	Sender      string // the vehicle's session pseudonym
	PublicKey   []byte // X25519, 32 bytes
}

// MaskKeys is the bus's key list the SO relays to every member, in member
// order (a vehicle's index is the position of its own key), with the
// threshold and whether self-masks are used.
type MaskKeys struct {
	Feeder, Bus int
	Threshold   int
	SingleMask  bool
	Keys        [][]byte
}

// MaskedReport is a vehicle's masked report for one round: y_i, and its
// self-mask seed's Shamir shares, each encrypted to its holder (three
// words per member; its own entry is zero; none with SingleMask).
type MaskedReport struct {
	Round, Feeder, Bus int
	Index              int
	Words              []uint64
	Shares             []uint64
}

// MaskRequest is the SO's dropout notice and share request to one vehicle
// in one pass of a round: its masks of the round with Dropped (summed, as
// a correction), and its shares of the self-mask seeds of Owners, which
// the SO relays, still encrypted, in Shares (three words per owner).
type MaskRequest struct {
	Round, Feeder, Bus int
	Pass               int
	Index              int // the vehicle asked
	Dropped            []int
	Owners             []int
	Shares             []uint64
}

// MaskAnswer is a vehicle's answer to a MaskRequest: its correction (the
// sum of its masks with the dropped, as it added them; empty if none were
// asked) and its decrypted shares of the owners' seeds (three field
// elements per owner, in the request's order).
type MaskAnswer struct {
	Round, Feeder, Bus int
	Pass               int
	Index              int
	Correction         []uint64
	Owners             []int
	Shares             []uint64
}

func maskHead(kind byte) []byte { return []byte{'G', 'V', kind, MaskMessageVersion} }

func appendInts(b []byte, v []int) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	for _, x := range v {
		b = binary.AppendUvarint(b, uint64(x))
	}
	return b
}

func appendWords(b []byte, v []uint64) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint64(b, x)
	}
	return b
}

func checkIndexList(what string, v []int) error {
	if len(v) > MaxMaskMembers {
		return fmt.Errorf("%s lists %d vehicles, more than %d", what, len(v), MaxMaskMembers)
	}
	for k, x := range v {
		if x < 0 || x >= MaxMaskMembers || k > 0 && x <= v[k-1] {
			return fmt.Errorf("%s must be strictly increasing indices below %d", what, MaxMaskMembers)
		}
	}
	return nil
}

// MarshalBinary encodes the advertisement.
func (m *MaskKey) MarshalBinary() ([]byte, error) {
	if len(m.Sender) == 0 || len(m.Sender) > charging.MaxSenderLen {
		return nil, fmt.Errorf("mask key: sender must have 1 to %d bytes", charging.MaxSenderLen)
	}
	if len(m.PublicKey) != 32 {
		return nil, fmt.Errorf("mask key: public key has %d bytes, X25519 keys have 32", len(m.PublicKey))
	}
	b := maskHead(kindMaskKey)
	b = binary.AppendVarint(b, int64(m.Feeder))
	b = binary.AppendVarint(b, int64(m.Bus))
	b = binary.AppendUvarint(b, uint64(len(m.Sender)))
	b = append(b, m.Sender...)
	return append(b, m.PublicKey...), nil
}

// UnmarshalBinary decodes an advertisement, refusing anything malformed.
func (m *MaskKey) UnmarshalBinary(data []byte) error {
	r := maskReader{b: data}
	r.header(kindMaskKey)
	var out MaskKey
	out.Feeder = r.int("feeder")
	out.Bus = r.int("bus")
	out.Sender = string(r.bytes("sender", charging.MaxSenderLen))
	out.PublicKey = r.fixed("public key", 32)
	r.end()
	if r.err != nil {
		return r.err
	}
	if out.Sender == "" {
		return fmt.Errorf("%w: mask key without a sender", ErrBadMaskMessage)
	}
	*m = out
	return nil
}

// MarshalBinary encodes the key list.
func (m *MaskKeys) MarshalBinary() ([]byte, error) {
	if len(m.Keys) == 0 || len(m.Keys) > MaxMaskMembers {
		return nil, fmt.Errorf("mask keys: %d keys, a bus has 1 to %d", len(m.Keys), MaxMaskMembers)
	}
	if m.Threshold < 1 || m.Threshold > len(m.Keys) {
		return nil, fmt.Errorf("mask keys: threshold %d outside 1..%d", m.Threshold, len(m.Keys))
	}
	b := maskHead(kindMaskKeys)
	b = binary.AppendVarint(b, int64(m.Feeder))
	b = binary.AppendVarint(b, int64(m.Bus))
	b = binary.AppendVarint(b, int64(m.Threshold))
	if m.SingleMask {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(m.Keys)))
	for _, k := range m.Keys {
		if len(k) != 32 {
			return nil, fmt.Errorf("mask keys: a key has %d bytes, X25519 keys have 32", len(k))
		}
		b = append(b, k...)
	}
	return b, nil
}

// UnmarshalBinary decodes a key list, refusing anything malformed.
func (m *MaskKeys) UnmarshalBinary(data []byte) error {
	r := maskReader{b: data}
	r.header(kindMaskKeys)
	var out MaskKeys
	out.Feeder = r.int("feeder")
	out.Bus = r.int("bus")
	out.Threshold = r.int("threshold")
	out.SingleMask = r.flag("single mask")
	n := r.length("keys", MaxMaskMembers)
	if r.err == nil && len(r.b) < 32*n {
		r.fail("keys are truncated: %d announced, %d bytes left", n, len(r.b))
	}
	if r.err == nil {
		out.Keys = make([][]byte, n)
		for i := range out.Keys {
			out.Keys[i] = r.fixed("key", 32)
		}
	}
	r.end()
	if r.err != nil {
		return r.err
	}
	if n == 0 || out.Threshold < 1 || out.Threshold > n {
		return fmt.Errorf("%w: key list of %d keys with threshold %d", ErrBadMaskMessage, n, out.Threshold)
	}
	*m = out
	return nil
}

// MarshalBinary encodes the report.
func (m *MaskedReport) MarshalBinary() ([]byte, error) {
	if len(m.Words) > charging.MaxSlots || len(m.Shares) > seedChunks*MaxMaskMembers || len(m.Shares)%seedChunks != 0 {
		return nil, fmt.Errorf("masked report of %d words and %d share words exceeds the limits (%d slots, %d members, %d words per share)", len(m.Words), len(m.Shares), charging.MaxSlots, MaxMaskMembers, seedChunks)
	}
	b := make([]byte, 0, 32+8*(len(m.Words)+len(m.Shares)))
	b = append(b, maskHead(kindMaskReport)...)
	b = appendMaskRound(b, m.Round, m.Feeder, m.Bus, m.Index)
	b = appendWords(b, m.Words)
	return appendWords(b, m.Shares), nil
}

// UnmarshalBinary decodes a report, refusing anything malformed.
func (m *MaskedReport) UnmarshalBinary(data []byte) error {
	r := maskReader{b: data}
	r.header(kindMaskReport)
	var out MaskedReport
	out.Round, out.Feeder, out.Bus, out.Index = r.round()
	out.Words = r.words("words", charging.MaxSlots)
	out.Shares = r.words("shares", seedChunks*MaxMaskMembers)
	r.end()
	if r.err != nil {
		return r.err
	}
	if len(out.Shares)%seedChunks != 0 {
		return fmt.Errorf("%w: %d share words, not %d per member", ErrBadMaskMessage, len(out.Shares), seedChunks)
	}
	*m = out
	return nil
}

// MarshalBinary encodes the request.
func (m *MaskRequest) MarshalBinary() ([]byte, error) {
	if err := checkIndexList("dropped", m.Dropped); err != nil {
		return nil, err
	}
	if err := checkIndexList("owners", m.Owners); err != nil {
		return nil, err
	}
	if len(m.Shares) != seedChunks*len(m.Owners) {
		return nil, fmt.Errorf("mask request: %d share words for %d owners", len(m.Shares), len(m.Owners))
	}
	b := make([]byte, 0, 32+4*len(m.Dropped)+12*len(m.Owners))
	b = append(b, maskHead(kindMaskRequest)...)
	b = appendMaskRound(b, m.Round, m.Feeder, m.Bus, m.Index)
	b = binary.AppendVarint(b, int64(m.Pass))
	b = appendInts(b, m.Dropped)
	b = appendInts(b, m.Owners)
	return appendWords(b, m.Shares), nil
}

// UnmarshalBinary decodes a request, refusing anything malformed.
func (m *MaskRequest) UnmarshalBinary(data []byte) error {
	r := maskReader{b: data}
	r.header(kindMaskRequest)
	var out MaskRequest
	out.Round, out.Feeder, out.Bus, out.Index = r.round()
	out.Pass = r.int("pass")
	out.Dropped = r.ints("dropped")
	out.Owners = r.ints("owners")
	out.Shares = r.words("shares", seedChunks*MaxMaskMembers)
	r.end()
	if r.err != nil {
		return r.err
	}
	if len(out.Shares) != seedChunks*len(out.Owners) {
		return fmt.Errorf("%w: %d share words for %d owners", ErrBadMaskMessage, len(out.Shares), len(out.Owners))
	}
	if out.Pass < 0 {
		return fmt.Errorf("%w: pass %d", ErrBadMaskMessage, out.Pass)
	}
	*m = out
	return nil
}

// MarshalBinary encodes the answer.
func (m *MaskAnswer) MarshalBinary() ([]byte, error) {
	if len(m.Correction) > charging.MaxSlots {
		return nil, fmt.Errorf("mask answer: correction of %d words exceeds %d slots", len(m.Correction), charging.MaxSlots)
	}
	if err := checkIndexList("owners", m.Owners); err != nil {
		return nil, err
	}
	if len(m.Shares) != seedChunks*len(m.Owners) {
		return nil, fmt.Errorf("mask answer: %d share words for %d owners", len(m.Shares), len(m.Owners))
	}
	b := make([]byte, 0, 32+8*len(m.Correction)+12*len(m.Owners))
	b = append(b, maskHead(kindMaskAnswer)...)
	b = appendMaskRound(b, m.Round, m.Feeder, m.Bus, m.Index)
	b = binary.AppendVarint(b, int64(m.Pass))
	b = appendWords(b, m.Correction)
	b = appendInts(b, m.Owners)
	return appendWords(b, m.Shares), nil
}

// UnmarshalBinary decodes an answer, refusing anything malformed.
func (m *MaskAnswer) UnmarshalBinary(data []byte) error {
	r := maskReader{b: data}
	r.header(kindMaskAnswer)
	var out MaskAnswer
	out.Round, out.Feeder, out.Bus, out.Index = r.round()
	out.Pass = r.int("pass")
	out.Correction = r.words("correction", charging.MaxSlots)
	out.Owners = r.ints("owners")
	out.Shares = r.words("shares", seedChunks*MaxMaskMembers)
	r.end()
	if r.err != nil {
		return r.err
	}
	if len(out.Shares) != seedChunks*len(out.Owners) {
		return fmt.Errorf("%w: %d share words for %d owners", ErrBadMaskMessage, len(out.Shares), len(out.Owners))
	}
	if slices.ContainsFunc(out.Shares, func(v uint64) bool { return v >= P }) {
		return fmt.Errorf("%w: a share is not an element of GF(2^61-1)", ErrBadMaskMessage)
	}
	if out.Pass < 0 {
		return fmt.Errorf("%w: pass %d", ErrBadMaskMessage, out.Pass)
	}
	*m = out
	return nil
}

func appendMaskRound(b []byte, round, feeder, bus, index int) []byte {
	b = binary.AppendVarint(b, int64(round))
	b = binary.AppendVarint(b, int64(feeder))
	b = binary.AppendVarint(b, int64(bus))
	return binary.AppendVarint(b, int64(index))
}

// maskReader decodes fields in order and keeps the first error.
type maskReader struct {
	b   []byte
	err error
}

func (r *maskReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrBadMaskMessage}, args...)...)
	}
}

func (r *maskReader) header(kind byte) {
	switch {
	case len(r.b) > MaxMaskMessageSize:
		r.fail("%d bytes exceed the %d-byte limit", len(r.b), MaxMaskMessageSize)
	case len(r.b) < 4 || r.b[0] != 'G' || r.b[1] != 'V':
		r.fail("not a gridveil message (no GV header)")
	case r.b[2] != kind:
		r.fail("message kind %#x where kind %#x was expected", r.b[2], kind)
	case r.b[3] != MaskMessageVersion:
		r.fail("encoding version %d; this party reads version %d", r.b[3], MaskMessageVersion)
	default:
		r.b = r.b[4:]
	}
}

func (r *maskReader) int(what string) int {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 || v < math.MinInt32 || v > math.MaxInt32 {
		r.fail("%s is not a valid integer", what)
		return 0
	}
	r.b = r.b[n:]
	return int(v)
}

// round reads the round, feeder, bus and index every round message starts
// with; none may be negative.
func (r *maskReader) round() (round, feeder, bus, index int) {
	round, feeder, bus, index = r.int("round"), r.int("feeder"), r.int("bus"), r.int("index")
	if r.err == nil && (round < 0 || feeder < 0 || bus < 0 || index < 0 || index >= MaxMaskMembers) {
		r.fail("round %d, feeder %d, bus %d, index %d: none may be negative, the index below %d", round, feeder, bus, index, MaxMaskMembers)
	}
	return
}

func (r *maskReader) flag(what string) bool {
	if r.err != nil {
		return false
	}
	if len(r.b) < 1 || r.b[0] > 1 {
		r.fail("%s is not 0 or 1", what)
		return false
	}
	v := r.b[0] == 1
	r.b = r.b[1:]
	return v
}

func (r *maskReader) length(what string, limit int) int {
	if r.err != nil {
		return 0
	}
	n, k := binary.Uvarint(r.b)
	if k <= 0 {
		r.fail("%s length is not a valid integer", what)
		return 0
	}
	if n > uint64(limit) {
		r.fail("%s has %d items, more than the limit of %d", what, n, limit)
		return 0
	}
	r.b = r.b[k:]
	return int(n)
}

func (r *maskReader) fixed(what string, n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.fail("%s is truncated", what)
		return nil
	}
	out := slices.Clone(r.b[:n])
	r.b = r.b[n:]
	return out
}

func (r *maskReader) bytes(what string, limit int) []byte {
	return r.fixed(what, r.length(what, limit))
}

func (r *maskReader) words(what string, limit int) []uint64 {
	n := r.length(what, limit)
	if r.err != nil {
		return nil
	}
	if len(r.b) < 8*n {
		r.fail("%s is truncated: %d words announced, %d bytes left", what, n, len(r.b))
		return nil
	}
	if n == 0 {
		return nil
	}
	out := make([]uint64, n)
	src := r.b[:8*n]
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(src[8*i:])
	}
	r.b = r.b[8*n:]
	return out
}

func (r *maskReader) ints(what string) []int {
	n := r.length(what, MaxMaskMembers)
	if r.err != nil {
		return nil
	}
	if len(r.b) < n { // at least one byte each
		r.fail("%s is truncated", what)
		return nil
	}
	if n == 0 {
		return nil
	}
	out := make([]int, n)
	for i := range out {
		v, k := binary.Uvarint(r.b)
		if k <= 0 || v >= MaxMaskMembers || i > 0 && int(v) <= out[i-1] {
			r.fail("%s must be strictly increasing indices below %d", what, MaxMaskMembers)
			return nil
		}
		out[i] = int(v)
		r.b = r.b[k:]
	}
	return out
}

func (r *maskReader) end() {
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
}

// The SO signs the key list it relays (SealMaskKeys): a party that could
// publish a list of its own on the bus would hold a pair key with every
// vehicle and unmask them. The seal is the one of charging's broadcasts
// under its own domain label: the encoding, then an Ed25519 signature over
// "gridveil masking SO v1", a zero byte and the encoding.
const maskSealLabel = "gridveil masking SO v1\x00"

// ErrMaskForged is returned for a key list whose signature is missing or
// not the SO's.
var ErrMaskForged = errors.New("masking key list not signed by the system operator")

// SealMaskKeys encodes and signs a key list with the SO's key.
func SealMaskKeys(m *MaskKeys, key ed25519.PrivateKey) ([]byte, error) {
	body, err := m.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return append(body, ed25519.Sign(key, append([]byte(maskSealLabel), body...))...), nil
}

// OpenMaskKeys checks the SO's signature, then decodes the key list.
func OpenMaskKeys(data []byte, so ed25519.PublicKey) (*MaskKeys, error) {
	if len(data) > MaxMaskMessageSize+ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: %d bytes exceed the %d-byte limit", ErrBadMaskMessage, len(data), MaxMaskMessageSize+ed25519.SignatureSize)
	}
	if len(data) < ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: %d bytes are too few for a signed message", ErrMaskForged, len(data))
	}
	body, sig := data[:len(data)-ed25519.SignatureSize], data[len(data)-ed25519.SignatureSize:]
	if len(so) != ed25519.PublicKeySize || !ed25519.Verify(so, append([]byte(maskSealLabel), body...), sig) {
		return nil, ErrMaskForged
	}
	var m MaskKeys
	if err := m.UnmarshalBinary(body); err != nil {
		return nil, err
	}
	return &m, nil
}
