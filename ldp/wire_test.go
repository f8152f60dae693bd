package ldp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

// TestWireRoundTrip: every report Perturb makes encodes, decodes to itself
// and fits in MaxReportBytes.
func TestWireRoundTrip(t *testing.T) {
	rng := newRand(8)
	for _, c := range allConfigs {
		for _, eps := range []float64{0.3, 1, 7} {
			m := mustNew(t, Config{Mechanism: c.name, Epsilon: eps, MaxKW: 4, Levels: c.levels})
			var buf []byte
			for i := 0; i < 2000; i++ {
				r := m.Perturb(4*rng.Float64(), rng)
				buf = m.AppendReport(buf[:0], r)
				if len(buf) > MaxReportBytes {
					t.Fatalf("%s: %d bytes", c.name, len(buf))
				}
				got, err := m.DecodeReport(buf)
				if err != nil || got != r {
					t.Fatalf("%s eps %v: %+v encoded as % x decodes to %+v, %v", c.name, eps, r, buf, got, err)
				}
			}
		}
	}
}

// TestWireRejects: malformed or out-of-range messages are refused with
// ErrInvalidReport.
func TestWireRejects(t *testing.T) {
	f64 := func(v float64) []byte { return binary.LittleEndian.AppendUint64(nil, math.Float64bits(v)) }
	cases := []struct {
		cfg Config
		msg []byte
	}{
		{Config{Mechanism: GRR, Levels: 4}, nil},
		{Config{Mechanism: GRR, Levels: 4}, []byte{2, 1}},          // OUE's tag
		{Config{Mechanism: GRR, Levels: 4}, []byte{1}},             // no code
		{Config{Mechanism: GRR, Levels: 4}, []byte{1, 4}},          // level 4 of 0..3
		{Config{Mechanism: GRR, Levels: 4}, []byte{1, 1, 0}},       // trailing byte
		{Config{Mechanism: GRR, Levels: 4}, []byte{1, 0x81, 0x00}}, // non-minimal varint
		{Config{Mechanism: GRR, Levels: 4}, append([]byte{1}, bytes.Repeat([]byte{0xff}, 10)...)},
		{Config{Mechanism: OUE, Levels: 4}, []byte{2, 16}},
		{Config{Mechanism: Duchi}, []byte{3, 2}},
		{Config{Mechanism: Duchi}, []byte{3}},
		{Config{Mechanism: Duchi}, []byte{3, 1, 1}},
		{Config{Mechanism: Piecewise}, append([]byte{4}, f64(math.NaN())...)},
		{Config{Mechanism: Piecewise}, append([]byte{4}, f64(1e9)...)},
		{Config{Mechanism: Piecewise}, append([]byte{4}, f64(1)[:7]...)},
		{Config{Mechanism: Hybrid}, append([]byte{5}, f64(math.Inf(-1))...)},
		{Config{Mechanism: Hybrid, Epsilon: 0.5}, append([]byte{5}, f64(0.1)...)}, // pure Duchi: only +-B
	}
	for _, c := range cases {
		if c.cfg.Epsilon == 0 {
			c.cfg.Epsilon = 1
		}
		c.cfg.MaxKW = 1
		m := mustNew(t, c.cfg)
		if r, err := m.DecodeReport(c.msg); !errors.Is(err, ErrInvalidReport) {
			t.Errorf("%s: % x decoded to %+v, %v", c.cfg.Mechanism, c.msg, r, err)
		}
	}
}

// FuzzDecodeReport: no input makes DecodeReport panic; whatever it
// accepts is in range, re-encodes to the same bytes, and can be added.
func FuzzDecodeReport(f *testing.F) {
	var mechs []*Mechanism
	for _, c := range allConfigs {
		for _, eps := range []float64{0.5, 2} {
			mechs = append(mechs, mustNew(f, Config{Mechanism: c.name, Epsilon: eps, MaxKW: 3, Levels: c.levels}))
		}
	}
	rng := newRand(1)
	for _, m := range mechs {
		f.Add(m.AppendReport(nil, m.Perturb(1, rng)))
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
	f.Add([]byte{4, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f})
	f.Fuzz(func(t *testing.T, msg []byte) {
		for _, m := range mechs {
			r, err := m.DecodeReport(msg)
			if err != nil {
				if !errors.Is(err, ErrInvalidReport) {
					t.Fatalf("%s: error %v does not wrap ErrInvalidReport", m.Name(), err)
				}
				continue
			}
			if err := m.ValidateReport(r); err != nil {
				t.Fatalf("%s: accepted % x as invalid %+v", m.Name(), msg, r)
			}
			if back := m.AppendReport(nil, r); !bytes.Equal(back, msg) {
				t.Fatalf("%s: % x decodes to %+v, which encodes as % x", m.Name(), msg, r, back)
			}
			a := m.NewAggregator()
			if err := a.Add(r); err != nil {
				t.Fatalf("%s: decoded report refused by the aggregator: %v", m.Name(), err)
			}
			if v := a.Sum().Value; math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("%s: sum %v", m.Name(), v)
			}
		}
	})
}
