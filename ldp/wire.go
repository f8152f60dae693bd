package ldp

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Wire format of one report, as a meter would send it to the SO:
//
//	byte 0     the mechanism: 1 grr, 2 oue, 3 duchi, 4 piecewise, 5 hybrid
//	grr, oue   Code as a minimal unsigned varint (encoding/binary)
//	duchi      one byte: 0 for -B, 1 for +B
//	piecewise,
//	hybrid     Value as 8 bytes, IEEE 754 binary64, little-endian
//
// Nothing may follow. The epsilon, clip bound and levels are not sent: the
// SO configures them for every meter of a deployment, and DecodeReport
// checks the report against that configuration.
var wireTag = map[Name]byte{GRR: 1, OUE: 2, Duchi: 3, Piecewise: 4, Hybrid: 5}

// MaxReportBytes is the longest encoded report.
const MaxReportBytes = 1 + binary.MaxVarintLen64

// AppendReport appends r's wire encoding to dst. It does not validate r;
// reports from Perturb are always valid.
func (m *Mechanism) AppendReport(dst []byte, r Report) []byte {
	dst = append(dst, wireTag[m.name])
	switch m.name {
	case GRR, OUE:
		return binary.AppendUvarint(dst, r.Code)
	case Duchi:
		if r.Value > 0 {
			return append(dst, 1)
		}
		return append(dst, 0)
	}
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(r.Value))
}

// DecodeReport parses one encoded report from outside (a meter's message)
// and checks it against m: the right mechanism, a canonical encoding with
// nothing after it, and a value in m's output range (ValidateReport). A
// report that passes cannot move a sum by more than the mechanism's range.
func (m *Mechanism) DecodeReport(b []byte) (Report, error) {
	if len(b) == 0 {
		return Report{}, fmt.Errorf("%w: empty message", ErrInvalidReport)
	}
	if b[0] != wireTag[m.name] {
		return Report{}, fmt.Errorf("%w: mechanism tag %d, but this aggregator counts %s reports (tag %d)", ErrInvalidReport, b[0], m.name, wireTag[m.name])
	}
	body := b[1:]
	var r Report
	switch m.name {
	case GRR, OUE:
		v, n := binary.Uvarint(body)
		if n <= 0 {
			return Report{}, fmt.Errorf("%w: %s code is not a valid varint", ErrInvalidReport, m.name)
		}
		if n != len(body) {
			return Report{}, fmt.Errorf("%w: %d bytes after the %s code", ErrInvalidReport, len(body)-n, m.name)
		}
		var buf [binary.MaxVarintLen64]byte
		if n != binary.PutUvarint(buf[:], v) {
			return Report{}, fmt.Errorf("%w: %s code %d is not minimally encoded", ErrInvalidReport, m.name, v)
		}
		r.Code = v
	case Duchi:
		if len(body) != 1 || body[0] > 1 {
			return Report{}, fmt.Errorf("%w: a duchi report is one byte, 0 or 1; got % x", ErrInvalidReport, body)
		}
		r.Value = -m.b
		if body[0] == 1 {
			r.Value = m.b
		}
	default:
		if len(body) != 8 {
			return Report{}, fmt.Errorf("%w: a %s report carries 8 bytes, got %d", ErrInvalidReport, m.name, len(body))
		}
		r.Value = math.Float64frombits(binary.LittleEndian.Uint64(body))
	}
	if err := m.ValidateReport(r); err != nil {
		return Report{}, err
	}
	return r, nil
}
