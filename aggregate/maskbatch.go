package aggregate

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/gridveil/gridveil/charging"
)

// A MaskBatch is a transport envelope, not a change of the cryptography:
// one party's masking messages of one kind, for one bus and one round, in
// one NATS message. An EV host sends one per bus and phase with all its
// vehicles' masked reports (or answers), and the SO one per bus and pass
// with all its requests, so that the per-message cost of the bus is paid
// once per host and bus instead of once per vehicle (docs/PERFORMANCE.md,
// "Masking over NATS"). Each item is the vehicle's (or the SO's) message,
// encoded exactly as it would travel alone; the cores step on the items
// one by one and never see the envelope.
//
// Encoding (docs/PLATFORM.md "Masking over the network"):
//
//	'G' 'V' 0x15 version   the envelope's kind, version 1
//	round, feeder, bus     zig-zag varints, none negative
//	item kind              1 byte: 0x12 reports, 0x13 requests, 0x14 answers
//	host                   uvarint length and bytes (at most 128; empty from the SO)
//	items                  uvarint count (1 to MaxMaskMembers), each a uvarint
//	                       length (at most MaxMaskMessageSize) and the item's
//	                       own encoding
//
// The decoder refuses an envelope over MaxMaskBatchSize, an item kind
// other than the one its subject carries, an item of another bus or round
// than the envelope's, items not in strictly increasing member index
// (which also refuses a vehicle twice), and any item its own decoder
// refuses, each with ErrBadMaskMessage and the reason.

// kindMaskBatch is the envelope's kind on the wire.
const kindMaskBatch byte = 0x15

// MaxMaskBatchSize bounds an encoded envelope: NATS's default largest
// payload (1 MiB, transport.MaxPayload) less room for the headers, so an
// envelope fits in one message of any default server. A sender whose
// items do not fit splits them over several envelopes (EncodeMaskBatches);
// since every item is at most MaxMaskMessageSize, at least seven fit.
const MaxMaskBatchSize = 1<<20 - 4096

// MaskBatch holds the items of one envelope; exactly one of Reports,
// Requests and Answers is non-empty.
type MaskBatch struct {
	Round, Feeder, Bus int
	// Host names the EV host that sent the envelope (empty from the SO).
	// It is not authenticated (nothing on the bus is yet): the SO uses it
	// to refuse an item for a vehicle that another host already reported
	// for, which catches two hosts configured with the same vehicle, not
	// an adversary who names the right host.
	Host     string
	Reports  []MaskedReport
	Requests []MaskRequest
	Answers  []MaskAnswer
}

// Kind is the item kind of a batch as it travels (0x12, 0x13 or 0x14),
// or 0 for a batch with no items or items of several kinds.
func (m *MaskBatch) kind() byte {
	switch {
	case len(m.Reports) > 0 && len(m.Requests) == 0 && len(m.Answers) == 0:
		return kindMaskReport
	case len(m.Requests) > 0 && len(m.Reports) == 0 && len(m.Answers) == 0:
		return kindMaskRequest
	case len(m.Answers) > 0 && len(m.Reports) == 0 && len(m.Requests) == 0:
		return kindMaskAnswer
	}
	return 0
}

// Len is the number of items.
func (m *MaskBatch) Len() int { return len(m.Reports) + len(m.Requests) + len(m.Answers) }

// item returns item k's round, feeder, bus, index and encoding.
func (m *MaskBatch) item(k int) (round, feeder, bus, index int, data []byte, err error) {
	switch m.kind() {
	case kindMaskReport:
		r := &m.Reports[k]
		data, err = r.MarshalBinary()
		return r.Round, r.Feeder, r.Bus, r.Index, data, err
	case kindMaskRequest:
		r := &m.Requests[k]
		data, err = r.MarshalBinary()
		return r.Round, r.Feeder, r.Bus, r.Index, data, err
	default:
		r := &m.Answers[k]
		data, err = r.MarshalBinary()
		return r.Round, r.Feeder, r.Bus, r.Index, data, err
	}
}

// encodeItems checks the batch and encodes its items in order.
func (m *MaskBatch) encodeItems() ([][]byte, error) {
	kind := m.kind()
	if kind == 0 {
		return nil, fmt.Errorf("mask batch: %d reports, %d requests and %d answers; a batch carries one or more items of one kind", len(m.Reports), len(m.Requests), len(m.Answers))
	}
	if m.Len() > MaxMaskMembers {
		return nil, fmt.Errorf("mask batch: %d items, a bus has at most %d members", m.Len(), MaxMaskMembers)
	}
	if len(m.Host) > charging.MaxSenderLen {
		return nil, fmt.Errorf("mask batch: host name of %d bytes, at most %d", len(m.Host), charging.MaxSenderLen)
	}
	if m.Round < 0 || m.Feeder < 0 || m.Bus < 0 {
		return nil, fmt.Errorf("mask batch: round %d, feeder %d, bus %d: none may be negative", m.Round, m.Feeder, m.Bus)
	}
	items := make([][]byte, m.Len())
	last := -1
	for k := range items {
		round, feeder, bus, index, data, err := m.item(k)
		if err != nil {
			return nil, fmt.Errorf("mask batch item %d: %w", k, err)
		}
		if round != m.Round || feeder != m.Feeder || bus != m.Bus {
			return nil, fmt.Errorf("mask batch of round %d, feeder %d, bus %d: item %d is of round %d, feeder %d, bus %d", m.Round, m.Feeder, m.Bus, k, round, feeder, bus)
		}
		if index <= last {
			return nil, fmt.Errorf("mask batch: items must be in strictly increasing member index (item %d has index %d after %d)", k, index, last)
		}
		last = index
		items[k] = data
	}
	return items, nil
}

func (m *MaskBatch) head(kind byte) []byte {
	b := maskHead(kindMaskBatch)
	b = binary.AppendVarint(b, int64(m.Round))
	b = binary.AppendVarint(b, int64(m.Feeder))
	b = binary.AppendVarint(b, int64(m.Bus))
	b = append(b, kind)
	b = binary.AppendUvarint(b, uint64(len(m.Host)))
	return append(b, m.Host...)
}

func packItems(head []byte, items [][]byte) []byte {
	size := len(head) + binary.MaxVarintLen64
	for _, it := range items {
		size += binary.MaxVarintLen64 + len(it)
	}
	b := make([]byte, 0, size)
	b = append(b, head...)
	b = binary.AppendUvarint(b, uint64(len(items)))
	for _, it := range items {
		b = binary.AppendUvarint(b, uint64(len(it)))
		b = append(b, it...)
	}
	return b
}

// MarshalBinary encodes the batch as one envelope; it fails when the
// envelope would exceed MaxMaskBatchSize (EncodeMaskBatches splits).
func (m *MaskBatch) MarshalBinary() ([]byte, error) {
	items, err := m.encodeItems()
	if err != nil {
		return nil, err
	}
	b := packItems(m.head(m.kind()), items)
	if len(b) > MaxMaskBatchSize {
		return nil, fmt.Errorf("mask batch of %d bytes exceeds the %d-byte limit: split it (EncodeMaskBatches)", len(b), MaxMaskBatchSize)
	}
	return b, nil
}

// EncodeMaskBatches encodes the batch as few envelopes as fit under
// MaxMaskBatchSize each, the items kept in order (at 96 slots, a whole
// bus of 7 vehicles takes one envelope of about 7 kB).
func EncodeMaskBatches(m *MaskBatch) ([][]byte, error) {
	items, err := m.encodeItems()
	if err != nil {
		return nil, err
	}
	head := m.head(m.kind())
	var out [][]byte
	for start := 0; start < len(items); {
		size := len(head) + binary.MaxVarintLen64
		end := start
		for end < len(items) && size+binary.MaxVarintLen64+len(items[end]) <= MaxMaskBatchSize {
			size += binary.MaxVarintLen64 + len(items[end])
			end++
		}
		if end == start { // cannot happen: an item is at most MaxMaskMessageSize
			return nil, fmt.Errorf("mask batch item of %d bytes does not fit an envelope", len(items[start]))
		}
		out = append(out, packItems(head, items[start:end]))
		start = end
	}
	return out, nil
}

// ReadMaskReports decodes an envelope of masked reports.
func ReadMaskReports(data []byte) (*MaskBatch, error) { return readMaskBatch(data, kindMaskReport) }

// ReadMaskRequests decodes an envelope of the SO's requests.
func ReadMaskRequests(data []byte) (*MaskBatch, error) { return readMaskBatch(data, kindMaskRequest) }

// ReadMaskAnswers decodes an envelope of answers.
func ReadMaskAnswers(data []byte) (*MaskBatch, error) { return readMaskBatch(data, kindMaskAnswer) }

// UnmarshalBinary decodes an envelope of any of the three item kinds.
func (m *MaskBatch) UnmarshalBinary(data []byte) error {
	kind := kindMaskReport // when the kind cannot be read, readMaskBatch names what is wrong
	if len(data) > 4 {
		r := maskReader{b: data[4:]}
		r.int("round")
		r.int("feeder")
		r.int("bus")
		if r.err == nil && len(r.b) > 0 && (r.b[0] == kindMaskRequest || r.b[0] == kindMaskAnswer) {
			kind = r.b[0]
		}
	}
	b, err := readMaskBatch(data, kind)
	if err != nil {
		return err
	}
	*m = *b
	return nil
}

func readMaskBatch(data []byte, kind byte) (*MaskBatch, error) {
	r := maskReader{b: data}
	if len(data) > MaxMaskBatchSize {
		return nil, fmt.Errorf("%w: envelope of %d bytes exceeds the %d-byte limit", ErrBadMaskMessage, len(data), MaxMaskBatchSize)
	}
	// header checks MaxMaskMessageSize; an envelope has its own limit.
	switch {
	case len(r.b) < 4 || r.b[0] != 'G' || r.b[1] != 'V':
		r.fail("not a gridveil message (no GV header)")
	case r.b[2] != kindMaskBatch:
		r.fail("message kind %#x where a mask batch (kind %#x) was expected: masking messages travel in batches", r.b[2], kindMaskBatch)
	case r.b[3] != MaskMessageVersion:
		r.fail("encoding version %d; this party reads version %d", r.b[3], MaskMessageVersion)
	default:
		r.b = r.b[4:]
	}
	out := &MaskBatch{}
	out.Round, out.Feeder, out.Bus = r.int("round"), r.int("feeder"), r.int("bus")
	if r.err == nil && (out.Round < 0 || out.Feeder < 0 || out.Bus < 0) {
		r.fail("batch of round %d, feeder %d, bus %d: none may be negative", out.Round, out.Feeder, out.Bus)
	}
	if r.err == nil {
		if len(r.b) < 1 {
			r.fail("batch is truncated before its item kind")
		} else if r.b[0] != kind {
			r.fail("batch of item kind %#x where kind %#x was expected", r.b[0], kind)
		} else {
			r.b = r.b[1:]
		}
	}
	out.Host = string(r.bytes("host", charging.MaxSenderLen))
	n := r.length("items", MaxMaskMembers)
	if r.err == nil && n == 0 {
		r.fail("batch without items")
	}
	if r.err == nil && len(r.b) < n { // at least one byte each
		r.fail("items are truncated: %d announced, %d bytes left", n, len(r.b))
	}
	last := -1
	for k := 0; k < n && r.err == nil; k++ {
		size := r.length("item", MaxMaskMessageSize)
		if r.err != nil {
			break
		}
		if len(r.b) < size {
			r.fail("item %d is truncated", k)
			break
		}
		item := r.b[:size]
		r.b = r.b[size:]
		var round, feeder, bus, index int
		var err error
		switch kind {
		case kindMaskReport:
			var m MaskedReport
			if err = m.UnmarshalBinary(item); err == nil {
				round, feeder, bus, index = m.Round, m.Feeder, m.Bus, m.Index
				out.Reports = append(out.Reports, m)
			}
		case kindMaskRequest:
			var m MaskRequest
			if err = m.UnmarshalBinary(item); err == nil {
				round, feeder, bus, index = m.Round, m.Feeder, m.Bus, m.Index
				out.Requests = append(out.Requests, m)
			}
		default:
			var m MaskAnswer
			if err = m.UnmarshalBinary(item); err == nil {
				round, feeder, bus, index = m.Round, m.Feeder, m.Bus, m.Index
				out.Answers = append(out.Answers, m)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("batch item %d: %w", k, err)
		}
		if round != out.Round || feeder != out.Feeder || bus != out.Bus {
			r.fail("batch of round %d, feeder %d, bus %d holds item %d of round %d, feeder %d, bus %d", out.Round, out.Feeder, out.Bus, k, round, feeder, bus)
			break
		}
		if index <= last {
			r.fail("batch items must be in strictly increasing member index (item %d has index %d after %d)", k, index, last)
			break
		}
		last = index
	}
	r.end()
	if r.err != nil {
		return nil, r.err
	}
	return out, nil
}

// Indices lists the member indices of the batch's items, in order.
func (m *MaskBatch) Indices() []int {
	out := make([]int, 0, m.Len())
	for k := range m.Reports {
		out = append(out, m.Reports[k].Index)
	}
	for k := range m.Requests {
		out = append(out, m.Requests[k].Index)
	}
	for k := range m.Answers {
		out = append(out, m.Answers[k].Index)
	}
	return slices.Clip(out)
}
