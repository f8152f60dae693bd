package charging

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// The messages of coordinated charging between the system operator and
// the vehicles, as they cross a party boundary. Each has a fixed binary
// encoding, documented in docs/PLATFORM.md:
//
//	magic 'G' 'V', kind (1 byte), version (1 byte), then the fields in the
//	order of the struct: integers as zig-zag varints, floats as IEEE 754
//	binary64 little-endian, strings and float vectors as a uvarint length
//	followed by the items.
//
// Decoders check every length against MaxSlots and MaxSenderLen before
// allocating, refuse trailing bytes, NaN and infinite values, and return
// ErrBadMessage (wrapped with what is wrong) on any other input.

// MessageVersion is the encoding version this package writes and reads.
const MessageVersion = 1

// Limits on what a decoder accepts, so a peer cannot make a party
// allocate more than a message of the largest legitimate size.
const (
	// MaxSlots bounds the horizon: a week of 2.5-minute slots.
	MaxSlots = 4096
	// MaxSenderLen bounds a sender's identifier (a vehicle's session
	// pseudonym or the SO's name), bytes.
	MaxSenderLen = 128
	// MaxMessageSize bounds an encoded message: a broadcast with two
	// vectors of MaxSlots values and its header.
	MaxMessageSize = 2*MaxSlots*8 + 256
)

// Message kinds on the wire.
const (
	kindBroadcast byte = 1
	kindReport    byte = 2
	kindDropped   byte = 3
)

// ErrBadMessage is wrapped by every decoding error.
var ErrBadMessage = errors.New("malformed coordination message")

// Phase says what a broadcast asks of the vehicles.
type Phase uint8

const (
	// PhaseStart asks for the report of the starting schedules: no step.
	PhaseStart Phase = 1
	// PhaseStep asks each vehicle to step on the broadcast and report.
	PhaseStep Phase = 2
	// PhaseBound asks each vehicle for its term of the Lagrangian bound
	// at the broadcast (Vehicle.Bound), without stepping.
	PhaseBound Phase = 3
	// PhaseDone ends the coordination: the schedules stand.
	PhaseDone Phase = 4
)

func (p Phase) String() string {
	switch p {
	case PhaseStart:
		return "start"
	case PhaseStep:
		return "step"
	case PhaseBound:
		return "bound"
	case PhaseDone:
		return "done"
	}
	return fmt.Sprintf("phase(%d)", uint8(p))
}

// Broadcast is what the SO sends the vehicles of one bus for one round:
// the aggregate load and the bus's voltage price to step on.
type Broadcast struct {
	Round     int // the SO's round counter; every broadcast has a new one
	Iter      int // the iteration the reports are for (-1: starting schedules)
	Phase     Phase
	Feeder    int
	Bus       int
	Tau       float64   // primal step size
	Aggregate []float64 // A(t), kW (empty for PhaseStart and PhaseDone)
	Price     []float64 // w_b(t) (empty for PhaseStart and PhaseDone)
}

// Report is one vehicle's answer to a broadcast, for the mechanism that
// sends schedules in the clear ("none", the insecure baseline): its
// schedule after the step, or its bound term. A private aggregation
// mechanism replaces Values with what it sends.
type Report struct {
	Round  int
	Iter   int
	Phase  Phase
	Feeder int
	Bus    int
	Sender string
	Bound  float64   // PhaseBound: the vehicle's bound term; else 0
	Values []float64 // PhaseStart, PhaseStep: the schedule, kW per slot
}

// Dropped tells a vehicle that the SO has dropped it for silence
// (Coordinator.Drop): the schedule it reported in round Kept is the one its
// bus's sum holds from now on, and the one its charge point executes.
type Dropped struct {
	Feeder, Bus int
	Sender      string
	Kept        int // the round of the report the SO kept (-1: none)
}

// MarshalBinary encodes the notice.
func (m *Dropped) MarshalBinary() ([]byte, error) {
	if len(m.Sender) > MaxSenderLen {
		return nil, fmt.Errorf("sender is longer than %d bytes", MaxSenderLen)
	}
	b := []byte{'G', 'V', kindDropped, MessageVersion}
	b = binary.AppendVarint(b, int64(m.Feeder))
	b = binary.AppendVarint(b, int64(m.Bus))
	b = binary.AppendUvarint(b, uint64(len(m.Sender)))
	b = append(b, m.Sender...)
	b = binary.AppendVarint(b, int64(m.Kept))
	return b, nil
}

// UnmarshalBinary decodes a notice, refusing anything malformed.
func (m *Dropped) UnmarshalBinary(data []byte) error {
	r := reader{b: data}
	r.header(kindDropped)
	var out Dropped
	out.Feeder = r.int("feeder")
	out.Bus = r.int("bus")
	out.Sender = r.string("sender", MaxSenderLen)
	out.Kept = r.int("kept round")
	r.end()
	if r.err != nil {
		return r.err
	}
	if out.Sender == "" {
		return fmt.Errorf("%w: drop notice without a sender", ErrBadMessage)
	}
	*m = out
	return nil
}

// MarshalBinary encodes the broadcast.
func (m *Broadcast) MarshalBinary() ([]byte, error) {
	if len(m.Aggregate) > MaxSlots || len(m.Price) > MaxSlots {
		return nil, fmt.Errorf("broadcast of %d/%d slots exceeds the %d-slot limit", len(m.Aggregate), len(m.Price), MaxSlots)
	}
	b := make([]byte, 0, 64+8*(len(m.Aggregate)+len(m.Price)))
	b = appendRoundHead(b, kindBroadcast, m.Round, m.Iter, m.Phase, m.Feeder, m.Bus)
	b = appendFloat(b, m.Tau)
	b = appendFloats(b, m.Aggregate)
	b = appendFloats(b, m.Price)
	return b, nil
}

// UnmarshalBinary decodes a broadcast, refusing anything malformed.
func (m *Broadcast) UnmarshalBinary(data []byte) error {
	r := reader{b: data}
	var out Broadcast
	out.Round, out.Iter, out.Phase, out.Feeder, out.Bus = r.roundHead(kindBroadcast)
	out.Tau = r.float("tau")
	out.Aggregate = r.floats("aggregate")
	out.Price = r.floats("price")
	r.end()
	if r.err != nil {
		return r.err
	}
	if len(out.Aggregate) != len(out.Price) {
		return fmt.Errorf("%w: broadcast has %d aggregate and %d price values", ErrBadMessage, len(out.Aggregate), len(out.Price))
	}
	if out.Phase == PhaseStep && !(out.Tau > 0) {
		return fmt.Errorf("%w: step broadcast with step size %v", ErrBadMessage, out.Tau)
	}
	*m = out
	return nil
}

// MarshalBinary encodes the report.
func (m *Report) MarshalBinary() ([]byte, error) {
	if len(m.Values) > MaxSlots {
		return nil, fmt.Errorf("report of %d slots exceeds the %d-slot limit", len(m.Values), MaxSlots)
	}
	if len(m.Sender) > MaxSenderLen {
		return nil, fmt.Errorf("sender %q is longer than %d bytes", m.Sender[:16]+"...", MaxSenderLen)
	}
	b := make([]byte, 0, 64+len(m.Sender)+8*len(m.Values))
	b = appendRoundHead(b, kindReport, m.Round, m.Iter, m.Phase, m.Feeder, m.Bus)
	b = binary.AppendUvarint(b, uint64(len(m.Sender)))
	b = append(b, m.Sender...)
	b = appendFloat(b, m.Bound)
	b = appendFloats(b, m.Values)
	return b, nil
}

// UnmarshalBinary decodes a report, refusing anything malformed.
func (m *Report) UnmarshalBinary(data []byte) error {
	r := reader{b: data}
	var out Report
	out.Round, out.Iter, out.Phase, out.Feeder, out.Bus = r.roundHead(kindReport)
	out.Sender = r.string("sender", MaxSenderLen)
	out.Bound = r.float("bound")
	out.Values = r.floats("values")
	r.end()
	if r.err != nil {
		return r.err
	}
	if out.Sender == "" {
		return fmt.Errorf("%w: report without a sender", ErrBadMessage)
	}
	*m = out
	return nil
}

// appendRoundHead writes what every broadcast and report starts with: the
// GV header with its kind and version, then round, iteration, phase,
// feeder and bus.
func appendRoundHead(b []byte, kind byte, round, iter int, ph Phase, feeder, bus int) []byte {
	b = append(b, 'G', 'V', kind, MessageVersion)
	b = binary.AppendVarint(b, int64(round))
	b = binary.AppendVarint(b, int64(iter))
	b = append(b, byte(ph))
	b = binary.AppendVarint(b, int64(feeder))
	return binary.AppendVarint(b, int64(bus))
}

// roundHead reads what appendRoundHead wrote.
func (r *reader) roundHead(kind byte) (round, iter int, ph Phase, feeder, bus int) {
	r.header(kind)
	round = r.int("round")
	iter = r.int("iteration")
	ph = r.phase()
	feeder = r.int("feeder")
	bus = r.int("bus")
	return
}

func appendFloat(b []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
}

func appendFloats(b []byte, v []float64) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	for _, x := range v {
		b = appendFloat(b, x)
	}
	return b
}

// reader decodes fields in order and keeps the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrBadMessage}, args...)...)
	}
}

func (r *reader) header(kind byte) {
	if len(r.b) > MaxMessageSize {
		r.fail("%d bytes exceed the %d-byte limit", len(r.b), MaxMessageSize)
		return
	}
	if len(r.b) < 4 || r.b[0] != 'G' || r.b[1] != 'V' {
		r.fail("not a gridveil coordination message (no GV header)")
		return
	}
	if r.b[2] != kind {
		r.fail("message kind %d where kind %d was expected", r.b[2], kind)
		return
	}
	if r.b[3] != MessageVersion {
		r.fail("encoding version %d; this party reads version %d", r.b[3], MessageVersion)
		return
	}
	r.b = r.b[4:]
}

func (r *reader) int(what string) int {
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

func (r *reader) phase() Phase {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 1 || r.b[0] < byte(PhaseStart) || r.b[0] > byte(PhaseDone) {
		r.fail("unknown phase")
		return 0
	}
	p := Phase(r.b[0])
	r.b = r.b[1:]
	return p
}

func (r *reader) float(what string) float64 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 8 {
		r.fail("%s is truncated", what)
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	if math.IsNaN(v) || math.IsInf(v, 0) {
		r.fail("%s is not a finite number", what)
		return 0
	}
	r.b = r.b[8:]
	return v
}

func (r *reader) length(what string, limit int) int {
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

func (r *reader) floats(what string) []float64 {
	n := r.length(what, MaxSlots)
	if r.err != nil {
		return nil
	}
	if len(r.b) < 8*n {
		r.fail("%s is truncated: %d values announced, %d bytes left", what, n, len(r.b))
		return nil
	}
	out := make([]float64, n)
	// One bounds check for the whole vector: this loop runs for every
	// report the SO receives.
	src := r.b[:8*n]
	for i := range out {
		v := math.Float64frombits(binary.LittleEndian.Uint64(src[8*i:]))
		if math.IsNaN(v) || math.IsInf(v, 0) {
			r.fail("%s[%d] is not a finite number", what, i)
			return nil
		}
		out[i] = v
	}
	r.b = r.b[8*n:]
	return out
}

func (r *reader) string(what string, limit int) string {
	n := r.length(what, limit)
	if r.err != nil {
		return ""
	}
	if len(r.b) < n {
		r.fail("%s is truncated", what)
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *reader) end() {
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
}
