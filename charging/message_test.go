package charging

import (
	"errors"
	"math"
	"reflect"
	"testing"
)

func TestMessageRoundTrip(t *testing.T) {
	b := Broadcast{Round: 7, Iter: 5, Phase: PhaseStep, Feeder: 3, Bus: 11, Tau: 1.0 / 7, Aggregate: []float64{1, -2.5, 3e6}, Price: []float64{0, 0.25, 1e-9}}
	data, err := b.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got Broadcast
	if err := got.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, b) {
		t.Fatalf("broadcast round trip: %+v, want %+v", got, b)
	}
	r := Report{Round: -1, Iter: -1, Phase: PhaseStart, Feeder: 0, Bus: 2, Sender: "ps-9f3a", Values: []float64{6.6, 0, 3.3}}
	data, err = r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var gr Report
	if err := gr.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gr, r) {
		t.Fatalf("report round trip: %+v, want %+v", gr, r)
	}
}

// TestMessageRefusesMalformed checks that each way a message can be wrong
// is refused with ErrBadMessage: a decoder of outside input must never
// accept what the encoder cannot produce.
func TestMessageRefusesMalformed(t *testing.T) {
	good := Report{Round: 1, Iter: 0, Phase: PhaseStep, Feeder: 0, Bus: 1, Sender: "v", Values: []float64{1, 2}}
	data, _ := good.MarshalBinary()
	nan := append([]byte(nil), data...)
	copy(nan[len(nan)-8:], []byte{0, 0, 0, 0, 0, 0, 0xf8, 0x7f}) // a NaN in the last value
	huge := append([]byte(nil), data[:len(data)-17]...)
	huge = append(huge, 0xff, 0xff, 0x03) // announces 65535 values
	bcast, _ := (&Broadcast{Round: 1, Phase: PhaseStep, Tau: 1, Aggregate: []float64{1}, Price: []float64{1}}).MarshalBinary()
	noTau, _ := (&Broadcast{Round: 1, Phase: PhaseStep, Tau: 0, Aggregate: []float64{1}, Price: []float64{1}}).MarshalBinary()
	noSender, _ := (&Report{Phase: PhaseStep}).MarshalBinary()
	cases := map[string][]byte{
		"empty":              nil,
		"no header":          []byte("hello world"),
		"other version":      append([]byte{'G', 'V', kindReport, 9}, data[4:]...),
		"a broadcast":        bcast,
		"truncated":          data[:len(data)-3],
		"trailing bytes":     append(append([]byte(nil), data...), 0),
		"NaN value":          nan,
		"oversized vector":   huge,
		"oversized message":  make([]byte, MaxMessageSize+1),
		"unknown phase":      append(append([]byte(nil), data[:6]...), append([]byte{9}, data[7:]...)...),
		"no sender":          noSender,
		"step without a tau": noTau,
	}
	for name, in := range cases {
		var r Report
		var b Broadcast
		errR, errB := r.UnmarshalBinary(in), b.UnmarshalBinary(in)
		if name == "a broadcast" {
			errB = nil // it is a valid broadcast
		}
		if name == "step without a tau" {
			errR = errB // only the broadcast decoder is concerned
		}
		if !errors.Is(errR, ErrBadMessage) || (errB != nil && !errors.Is(errB, ErrBadMessage)) {
			t.Errorf("%s: report decoder %v, broadcast decoder %v; want ErrBadMessage", name, errR, errB)
		}
	}
	var b Broadcast
	if err := b.UnmarshalBinary(noTau); !errors.Is(err, ErrBadMessage) {
		t.Errorf("step broadcast without a step size accepted: %v", err)
	}
}

func FuzzDecodeMessage(f *testing.F) {
	b, _ := (&Broadcast{Round: 3, Iter: 2, Phase: PhaseStep, Feeder: 1, Bus: 4, Tau: 0.1, Aggregate: []float64{1, 2}, Price: []float64{0, 1}}).MarshalBinary()
	r, _ := (&Report{Round: 3, Iter: 2, Phase: PhaseBound, Feeder: 1, Bus: 4, Sender: "x", Bound: -3}).MarshalBinary()
	d, _ := (&Dropped{Feeder: 1, Bus: 4, Sender: "ps-3", Kept: 7}).MarshalBinary()
	f.Add(b)
	f.Add(r)
	f.Add(d)
	f.Fuzz(func(t *testing.T, data []byte) {
		var rd Dropped
		if rd.UnmarshalBinary(data) == nil {
			again, err := rd.MarshalBinary()
			var rd2 Dropped
			if err != nil || rd2.UnmarshalBinary(again) != nil || rd2 != rd || rd.Sender == "" {
				t.Fatalf("drop notice %+v does not survive a round trip", rd)
			}
		}
		var rb Broadcast
		if rb.UnmarshalBinary(data) == nil {
			again, err := rb.MarshalBinary()
			if err != nil {
				t.Fatalf("decoded broadcast does not encode: %v", err)
			}
			var rb2 Broadcast
			if err := rb2.UnmarshalBinary(again); err != nil || !reflect.DeepEqual(rb, rb2) {
				t.Fatalf("broadcast does not survive a round trip: %v", err)
			}
			for _, v := range append(rb.Aggregate, rb.Price...) {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatal("decoded a non-finite value")
				}
			}
		}
		var rr Report
		if rr.UnmarshalBinary(data) == nil {
			if rr.Sender == "" || len(rr.Values) > MaxSlots {
				t.Fatalf("decoded an invalid report %+v", rr)
			}
			again, err := rr.MarshalBinary()
			if err != nil {
				t.Fatalf("decoded report does not encode: %v", err)
			}
			var rr2 Report
			if err := rr2.UnmarshalBinary(again); err != nil || !reflect.DeepEqual(rr, rr2) {
				t.Fatalf("report does not survive a round trip: %v", err)
			}
		}
	})
}
