package aggregate

import (
	"crypto/rand"
	"encoding"
	"errors"
	"math"
	mrand "math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// wire sends m through its binary encoding, as the network does.
func wire[T any, PT interface {
	*T
	encoding.BinaryMarshaler
	encoding.BinaryUnmarshaler
}](t *testing.T, m PT) PT {
	t.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatalf("%T: %v", m, err)
	}
	out := PT(new(T))
	if err := out.UnmarshalBinary(b); err != nil {
		t.Fatalf("%T does not decode: %v", m, err)
	}
	return out
}

// exactSum is the fixed-point sum the masks must give back, computed
// without them: each value rounded to 2^-32 kW, added as integers.
func exactSum(x [][]float64, in []bool) []float64 {
	out := make([]float64, len(x[0]))
	for t := range out {
		var s int64
		for i, row := range x {
			if in[i] {
				s += int64(math.RoundToEven(row[t] * FixedScale))
			}
		}
		out[t] = float64(s) / FixedScale
	}
	return out
}

// maskBusNet is one bus of cores whose every message crosses its binary
// encoding.
type maskBusNet struct {
	veh []*MaskVehicle
	agg *MaskAggregator
}

func newMaskBusNet(t *testing.T, n, thr, slots int, single bool) *maskBusNet {
	t.Helper()
	agg, err := NewMaskAggregator(2, 5, n, thr, slots, single)
	if err != nil {
		t.Fatal(err)
	}
	b := &maskBusNet{agg: agg}
	for i := range n {
		v, k, err := NewMaskVehicle(2, 5, slots, "ps-"+string(rune('a'+i)), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if err := agg.SetKey(i, wire(t, k)); err != nil {
			t.Fatal(err)
		}
		b.veh = append(b.veh, v)
	}
	list, ok := agg.Keys()
	if !ok {
		t.Fatal("every key is in and the list is not ready")
	}
	for _, v := range b.veh {
		if err := v.SetKeys(wire(t, list)); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// run runs round r with x; lostReport, lostAnswer[pass] say whose messages
// are lost. It returns the sum and the members left out.
func (b *maskBusNet) run(t *testing.T, r int, x [][]float64, lostReport map[int]bool, lostAnswer map[int]map[int]bool) ([]float64, []int, bool) {
	t.Helper()
	if err := b.agg.Begin(r); err != nil {
		t.Fatal(err)
	}
	for i, v := range b.veh {
		rep, err := v.Report(r, x[i])
		if err != nil {
			t.Fatal(err)
		}
		if !lostReport[i] {
			if err := b.agg.AddReport(wire(t, rep)); err != nil {
				t.Fatal(err)
			}
			// At-least-once delivery: a second copy changes nothing.
			if err := b.agg.AddReport(wire(t, rep)); err != nil {
				t.Fatalf("a duplicate report: %v", err)
			}
		}
	}
	reqs, err := b.agg.Close()
	for pass := 1; err == nil && !b.agg.Finished(); pass++ {
		for k := range reqs {
			q := wire(t, &reqs[k])
			if lostAnswer[pass][q.Index] {
				continue
			}
			a, err := b.veh[q.Index].Answer(q)
			if err != nil {
				t.Fatalf("pass %d, vehicle %d: %v", pass, q.Index, err)
			}
			if err := b.agg.AddAnswer(wire(t, a)); err != nil {
				t.Fatal(err)
			}
		}
		reqs, err = b.agg.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	sum, ok := b.agg.Result()
	return slices.Clone(sum), slices.Clone(b.agg.Dropped()), ok
}

// TestMaskCoresOverTheWire runs a bus of seven vehicle cores and the SO's
// core with every message encoded and decoded, with V2G schedules
// (negative kW: discharging) and with losses in every phase: a report, a
// correction (so that a second pass asks for the masks with the one that
// left), and a seed answer. Every round's sum is the survivors' exact
// fixed-point sum, bit for bit, computed without masks; rounds whose
// holders are too few report no sum.
func TestMaskCoresOverTheWire(t *testing.T) {
	const n, slots = 7, 24
	rng := mrand.New(mrand.NewPCG(15, 15))
	for _, single := range []bool{false, true} {
		b := newMaskBusNet(t, n, 0, slots, single)
		cases := []struct {
			report map[int]bool
			answer map[int]map[int]bool
			left   []int // left out of the sum
			ok     bool
		}{
			{nil, nil, nil, true},
			{map[int]bool{2: true}, nil, []int{2}, true},
			{map[int]bool{2: true}, map[int]map[int]bool{1: {4: true}}, []int{2, 4}, true},
			{map[int]bool{0: true, 6: true}, map[int]map[int]bool{1: {1: true}}, []int{0, 6, 1}, true},
			{map[int]bool{0: true, 6: true}, map[int]map[int]bool{1: {1: true}, 2: {5: true}}, []int{0, 6, 1, 5}, false}, // 3 left
			{map[int]bool{0: true, 1: true, 2: true, 3: true}, nil, []int{0, 1, 2, 3}, false},                            // 3 of 7 < threshold 4
		}
		if !single {
			// A lost seed answer: another holder stands in.
			cases = append(cases, struct {
				report map[int]bool
				answer map[int]map[int]bool
				left   []int
				ok     bool
			}{nil, map[int]map[int]bool{1: {0: true}}, nil, true})
		}
		for r, c := range cases {
			x := make([][]float64, n)
			for i := range x {
				x[i] = make([]float64, slots)
				for tt := range x[i] {
					x[i][tt] = -11 + 18*rng.Float64() // discharging to -11 kW, charging to 7 kW
				}
			}
			sum, left, ok := b.run(t, 3*r+1, x, c.report, c.answer)
			if ok != c.ok || !slices.Equal(left, c.left) {
				t.Fatalf("single=%v round %d: ok %v, left out %v; want %v, %v", single, r, ok, left, c.ok, c.left)
			}
			if !ok {
				continue
			}
			in := make([]bool, n)
			for i := range in {
				in[i] = !slices.Contains(left, i)
			}
			if want := exactSum(x, in); !slices.Equal(sum, want) {
				t.Fatalf("single=%v round %d: sum %v, the survivors' exact sum %v", single, r, sum[:3], want[:3])
			}
		}
	}
}

// TestMaskedReportHidesValues: a masked report does not carry its
// schedule (the same schedule masked in two rounds gives unrelated words,
// none of them the schedule's encoding), and the seed shares the SO relays
// are not the shares the holder decrypts.
func TestMaskedReportHidesValues(t *testing.T) {
	b := newMaskBusNet(t, 3, 0, 8, false)
	x := []float64{-7, -3.3, 0, 1, 2, 3, 4, 5}
	r1, _ := b.veh[0].Report(0, x)
	if _, err := b.veh[1].Report(0, x); err != nil {
		t.Fatal(err)
	}
	relayed := r1.Shares[1*seedChunks : 2*seedChunks]
	a, err := b.veh[1].Answer(&MaskRequest{Round: 0, Feeder: 2, Bus: 5, Pass: 1, Index: 1, Owners: []int{0}, Shares: relayed})
	if err != nil {
		t.Fatal(err)
	}
	for c := range seedChunks {
		if a.Shares[c] == relayed[c] || a.Shares[c] >= P {
			t.Fatalf("share chunk %d: relayed %x, decrypted %x", c, relayed[c], a.Shares[c])
		}
	}
	w1 := slices.Clone(r1.Words)
	r2, _ := b.veh[0].Report(1, x)
	for tt, v := range x {
		if w1[tt] == encode64(v) || r2.Words[tt] == encode64(v) || w1[tt] == r2.Words[tt] {
			t.Fatalf("slot %d: masked words %x, %x for the value %v", tt, w1[tt], r2.Words[tt], v)
		}
	}
}

// TestMaskCoresRefuse: what the cores refuse, each with its typed error:
// a replayed report of an earlier round, a second different report, a
// report for another bus or of the wrong size, an answer from a member
// not asked or for another pass, a key list without the vehicle's key or
// with a key twice, a second key for a member.
func TestMaskCoresRefuse(t *testing.T) {
	const n, slots = 4, 6
	b := newMaskBusNet(t, n, 0, slots, false)
	x := make([][]float64, n)
	for i := range x {
		x[i] = []float64{1, -2, 3, -4, 5, -6}
	}
	b.run(t, 0, x, nil, nil)
	old, _ := b.veh[1].Report(0, x[1])
	if err := b.agg.Begin(1); err != nil {
		t.Fatal(err)
	}
	if err := b.agg.AddReport(old); !errors.Is(err, ErrMaskStale) {
		t.Fatalf("a replayed report of round 0 in round 1: %v", err)
	}
	rep, _ := b.veh[1].Report(1, x[1])
	if err := b.agg.AddReport(rep); err != nil {
		t.Fatal(err)
	}
	other := *rep
	other.Words = slices.Clone(rep.Words)
	other.Words[0]++
	if err := b.agg.AddReport(&other); !errors.Is(err, ErrMaskBad) {
		t.Fatalf("a second, different report: %v", err)
	}
	moved := *rep
	moved.Bus = 6
	if err := b.agg.AddReport(&moved); !errors.Is(err, ErrMaskBad) {
		t.Fatalf("a report for another bus: %v", err)
	}
	short := *rep
	short.Index, short.Words = 2, rep.Words[:3]
	if err := b.agg.AddReport(&short); !errors.Is(err, ErrMaskBad) {
		t.Fatalf("a short report: %v", err)
	}
	if _, err := b.veh[1].Report(0, x[1]); !errors.Is(err, ErrMaskStale) {
		t.Fatalf("a vehicle asked for an earlier round: %v", err)
	}
	for i := range n {
		if i != 1 && i != 3 {
			r, _ := b.veh[i].Report(1, x[i])
			if err := b.agg.AddReport(r); err != nil {
				t.Fatal(err)
			}
		}
	}
	reqs, err := b.agg.Close() // 3 dropped: a correction pass
	if err != nil || len(reqs) != 3 {
		t.Fatalf("close: %v, %d requests", err, len(reqs))
	}
	a, err := b.veh[0].Answer(&reqs[0])
	if err != nil {
		t.Fatal(err)
	}
	stray := *a
	stray.Index = 3
	if err := b.agg.AddAnswer(&stray); !errors.Is(err, ErrMaskBad) {
		t.Fatalf("an answer from the dropped member: %v", err)
	}
	late := *a
	late.Pass = 7
	if err := b.agg.AddAnswer(&late); !errors.Is(err, ErrMaskStale) {
		t.Fatalf("an answer for another pass: %v", err)
	}
	if err := b.agg.SetKey(0, &MaskKey{Feeder: 2, Bus: 5, Sender: "x", PublicKey: make([]byte, 32)}); !errors.Is(err, ErrMaskBad) {
		t.Fatalf("a second key for a member: %v", err)
	}
	v, k, _ := NewMaskVehicle(2, 5, slots, "z", rand.Reader)
	list, _ := b.agg.Keys()
	if err := v.SetKeys(list); !errors.Is(err, ErrMaskBad) || !strings.Contains(err.Error(), "does not hold") {
		t.Fatalf("a list without the vehicle's key: %v", err)
	}
	twice := &MaskKeys{Feeder: 2, Bus: 5, Threshold: 2, Keys: [][]byte{k.PublicKey, list.Keys[0], list.Keys[0]}}
	if err := v.SetKeys(twice); !errors.Is(err, ErrMaskBad) || !strings.Contains(err.Error(), "repeated") {
		t.Fatalf("a list with a key twice: %v", err)
	}
}

// TestMaskingSumsNegativeExactly (issue 15): the in-process mechanism sums
// V2G schedules, discharging at up to -22 kW, exactly to the fixed-point
// precision: every slot's sum equals the integer sum of the rounded
// values, with and without self-masks and with dropouts recovered.
func TestMaskingSumsNegativeExactly(t *testing.T) {
	p := paper(t)
	g := firstBus(p)
	T := p.Slots
	for _, cfg := range []MaskingConfig{{}, {SingleMask: true}, {DropRate: 0.2}} {
		m, err := NewMasking(p, cfg, 5, false)
		if err != nil {
			t.Fatal(err)
		}
		rng := mrand.New(mrand.NewPCG(22, 22))
		sum := make([]float64, T)
		checked := 0
		for iter := 0; iter < 30; iter++ {
			x := make([]float64, len(g.EVs)*T)
			for k := range x {
				x[k] = -22 + 29*rng.Float64()
			}
			failed := m.FailedRounds()
			if err := m.Aggregate(iter, g, x, T, sum); err != nil {
				t.Fatal(err)
			}
			if len(m.LastDropped(g.Feeder, g.Bus)) > 0 || m.FailedRounds() > failed {
				continue // the SO coordinated on its last complete sum
			}
			rows := make([][]float64, len(g.EVs))
			in := make([]bool, len(g.EVs))
			for k := range rows {
				rows[k], in[k] = x[k*T:(k+1)*T], true
			}
			want := exactSum(rows, in)
			neg := false
			for tt := range want {
				neg = neg || want[tt] < 0
			}
			if !slices.Equal(sum, want) || !neg {
				t.Fatalf("%+v iteration %d: sum %v, exact %v (some negative: %v)", cfg, iter, sum[:2], want[:2], neg)
			}
			checked++
		}
		if checked < 5 {
			t.Fatalf("%+v: only %d complete iterations checked", cfg, checked)
		}
	}
}

func maskSamples() []encoding.BinaryMarshaler {
	return []encoding.BinaryMarshaler{
		&MaskKey{Feeder: 1, Bus: 3, Sender: "ps-4", PublicKey: make([]byte, 32)},
		&MaskKeys{Feeder: 1, Bus: 3, Threshold: 2, Keys: [][]byte{make([]byte, 32), append(make([]byte, 31), 1)}},
		&MaskedReport{Round: 9, Feeder: 1, Bus: 3, Index: 1, Words: []uint64{1, 1 << 63}, Shares: []uint64{1, 2, 3, 4, 5, 6}},
		&MaskRequest{Round: 9, Feeder: 1, Bus: 3, Pass: 2, Index: 1, Dropped: []int{0, 4}, Owners: []int{1}, Shares: []uint64{7, 8, 9}},
		&MaskAnswer{Round: 9, Feeder: 1, Bus: 3, Pass: 2, Index: 1, Correction: []uint64{5, 6}, Owners: []int{1, 2}, Shares: []uint64{1, 2, 3, 4, 5, 6}},
	}
}

func decodeMask(data []byte) (any, error) {
	var errs []error
	for _, m := range []encoding.BinaryUnmarshaler{&MaskKey{}, &MaskKeys{}, &MaskedReport{}, &MaskRequest{}, &MaskAnswer{}} {
		err := m.UnmarshalBinary(data)
		if err == nil {
			return m, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// TestMaskDecodersRefuse: every malformation of every masking message is
// refused with ErrBadMaskMessage and a reason, and the encoders refuse
// what the decoders would.
func TestMaskDecodersRefuse(t *testing.T) {
	for _, m := range maskSamples() {
		good, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeMask(good)
		if err != nil || !reflect.DeepEqual(back, m) {
			t.Fatalf("%T does not survive a round trip: %v", m, err)
		}
		bad := map[string][]byte{
			"truncated":   good[:len(good)-1],
			"trailing":    append(slices.Clone(good), 0),
			"no header":   append([]byte("XX"), good[2:]...),
			"version":     append([]byte{'G', 'V', good[2], 9}, good[4:]...),
			"oversized":   append(slices.Clone(good), make([]byte, MaxMaskMessageSize)...),
			"charging":    append([]byte{'G', 'V', 2, 1}, good[4:]...),
			"empty":       nil,
			"header only": good[:4],
		}
		for what, data := range bad {
			var into encoding.BinaryUnmarshaler
			switch m.(type) {
			case *MaskKey:
				into = &MaskKey{}
			case *MaskKeys:
				into = &MaskKeys{}
			case *MaskedReport:
				into = &MaskedReport{}
			case *MaskRequest:
				into = &MaskRequest{}
			case *MaskAnswer:
				into = &MaskAnswer{}
			}
			if err := into.UnmarshalBinary(data); !errors.Is(err, ErrBadMaskMessage) || len(err.Error()) < len(ErrBadMaskMessage.Error())+5 {
				t.Errorf("%T %s: %v, want ErrBadMaskMessage with a reason", m, what, err)
			}
		}
	}
	refused := []struct {
		m    encoding.BinaryMarshaler
		want string
	}{
		{&MaskRequest{Dropped: []int{3, 3}}, "strictly increasing"},
		{&MaskRequest{Owners: []int{1}, Shares: []uint64{1}}, "share words"},
		{&MaskAnswer{Owners: []int{2, 1}}, "strictly increasing"},
		{&MaskKeys{Threshold: 3, Keys: [][]byte{make([]byte, 32)}}, "threshold"},
		{&MaskKey{Sender: "x", PublicKey: make([]byte, 31)}, "32"},
		{&MaskedReport{Shares: []uint64{1, 2}}, "limits"},
	}
	for _, c := range refused {
		if _, err := c.m.MarshalBinary(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("encoding %+v: %v, want %q", c.m, err, c.want)
		}
	}
	// Decoded fields that the encoders check are checked on decoding too.
	ans, _ := (&MaskAnswer{Owners: []int{1}, Shares: []uint64{1, 2, 3}}).MarshalBinary()
	ans[len(ans)-1] = 0xff // the last share's top byte: >= P
	if err := new(MaskAnswer).UnmarshalBinary(ans); !errors.Is(err, ErrBadMaskMessage) || !strings.Contains(err.Error(), "GF") {
		t.Errorf("a share outside the field: %v", err)
	}
	req, _ := (&MaskRequest{Dropped: []int{1, 2}}).MarshalBinary()
	for i := len(req) - 1; i > 0; i-- {
		if req[i] == 2 && req[i-1] == 1 {
			req[i] = 1
			break
		}
	}
	if err := new(MaskRequest).UnmarshalBinary(req); !errors.Is(err, ErrBadMaskMessage) || !strings.Contains(err.Error(), "increasing") {
		t.Errorf("a dropped list with a repeat: %v", err)
	}
}

// FuzzDecodeMaskMessage: no input makes a masking decoder panic or
// allocate beyond the limits, and whatever decodes encodes and decodes to
// the same message.
func FuzzDecodeMaskMessage(f *testing.F) {
	for _, m := range maskSamples() {
		b, _ := m.MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeMask(data)
		if err != nil {
			if !errors.Is(err, ErrBadMaskMessage) {
				t.Fatalf("a decoding error that is not ErrBadMaskMessage: %v", err)
			}
			return
		}
		again, err := m.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			t.Fatalf("decoded %T does not encode: %v", m, err)
		}
		back, err := decodeMask(again)
		if err != nil || !reflect.DeepEqual(back, m) {
			t.Fatalf("%T does not survive a round trip: %v", m, err)
		}
	})
}
