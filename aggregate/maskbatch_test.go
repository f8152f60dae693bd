package aggregate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func batchSamples() []*MaskBatch {
	return []*MaskBatch{
		{Round: 9, Feeder: 1, Bus: 3, Host: "ev-1", Reports: []MaskedReport{
			{Round: 9, Feeder: 1, Bus: 3, Index: 0, Words: []uint64{1, 2}, Shares: []uint64{1, 2, 3, 4, 5, 6}},
			{Round: 9, Feeder: 1, Bus: 3, Index: 4, Words: []uint64{1 << 63, 7}, Shares: []uint64{6, 5, 4, 3, 2, 1}},
		}},
		{Round: 9, Feeder: 1, Bus: 3, Requests: []MaskRequest{
			{Round: 9, Feeder: 1, Bus: 3, Pass: 2, Index: 1, Dropped: []int{0, 4}},
			{Round: 9, Feeder: 1, Bus: 3, Pass: 2, Index: 2, Owners: []int{1}, Shares: []uint64{7, 8, 9}},
		}},
		{Round: 9, Feeder: 1, Bus: 3, Host: "ev-2", Answers: []MaskAnswer{
			{Round: 9, Feeder: 1, Bus: 3, Pass: 2, Index: 1, Correction: []uint64{5, 6}},
			{Round: 9, Feeder: 1, Bus: 3, Pass: 2, Index: 3, Owners: []int{1, 2}, Shares: []uint64{1, 2, 3, 4, 5, 6}},
		}},
	}
}

// TestMaskBatchRoundTrip: each item kind survives the envelope unchanged,
// item for item (the envelope's items are the messages' own encodings),
// and a batch too large for one envelope is split into envelopes under
// the limit that hold every item once, in order.
func TestMaskBatchRoundTrip(t *testing.T) {
	for _, b := range batchSamples() {
		data, err := b.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var back MaskBatch
		if err := back.UnmarshalBinary(data); err != nil || !reflect.DeepEqual(&back, b) {
			t.Fatalf("batch does not survive a round trip: %v\n%+v\n%+v", err, b, &back)
		}
		items, err := b.encodeItems()
		if err != nil {
			t.Fatal(err)
		}
		for k, it := range items {
			if !bytes.Contains(data, it) {
				t.Fatalf("item %d is not carried as its own encoding", k)
			}
		}
	}
	// 40 reports of 4,096 slots (about 33 kB each) exceed one envelope.
	big := &MaskBatch{Round: 2, Feeder: 0, Bus: 5, Host: "ev-0"}
	for i := range 40 {
		w := make([]uint64, 4096)
		for k := range w {
			w[k] = uint64(i*4096 + k)
		}
		big.Reports = append(big.Reports, MaskedReport{Round: 2, Bus: 5, Index: 3 * i, Words: w})
	}
	if _, err := big.MarshalBinary(); err == nil || !strings.Contains(err.Error(), "split") {
		t.Fatalf("an envelope over the limit encoded: %v", err)
	}
	env, err := EncodeMaskBatches(big)
	if err != nil {
		t.Fatal(err)
	}
	if len(env) < 2 {
		t.Fatalf("%d envelopes for %d bytes of reports", len(env), 40*33000)
	}
	var got []MaskedReport
	for _, e := range env {
		if len(e) > MaxMaskBatchSize {
			t.Fatalf("an envelope of %d bytes", len(e))
		}
		b, err := ReadMaskReports(e)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b.Reports...)
	}
	if !reflect.DeepEqual(got, big.Reports) {
		t.Fatal("the split envelopes do not hold the reports in order")
	}
}

// TestMaskBatchRefuses: every malformation of an envelope is refused with
// ErrBadMaskMessage and a reason naming it, and the encoder refuses what
// the decoder would.
func TestMaskBatchRefuses(t *testing.T) {
	rep := batchSamples()[0]
	good, err := rep.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	single, _ := rep.Reports[0].MarshalBinary()
	reenc := func(edit func(b *MaskBatch)) []byte {
		// Encodes the batch's items as they are, past the encoder's checks.
		b := *rep
		b.Reports = append([]MaskedReport(nil), rep.Reports...)
		edit(&b)
		var items [][]byte
		for k := range b.Reports {
			it, err := b.Reports[k].MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			items = append(items, it)
		}
		return packItems(b.head(kindMaskReport), items)
	}
	empty := packItems(rep.head(kindMaskReport), nil)
	badItem := packItems(rep.head(kindMaskReport), [][]byte{[]byte("GV\x12\x01junk")})
	longHost := append(rep.head(kindMaskReport)[:0:0], good[:4]...)
	longHost = binary.AppendVarint(longHost, 9)
	longHost = binary.AppendVarint(longHost, 1)
	longHost = binary.AppendVarint(longHost, 3)
	longHost = append(longHost, kindMaskReport)
	longHost = binary.AppendUvarint(longHost, 200)
	longHost = append(longHost, make([]byte, 200)...)
	for name, c := range map[string]struct {
		data []byte
		want string
	}{
		"oversized":        {append(bytes.Clone(good), make([]byte, MaxMaskBatchSize)...), "limit"},
		"a single report":  {single, "travel in batches"},
		"no header":        {[]byte("XX\x15\x01"), "GV header"},
		"version":          {append([]byte("GV\x15\x02"), good[4:]...), "version 2"},
		"other bus item":   {reenc(func(b *MaskBatch) { b.Reports[1].Bus = 4 }), "holds item 1"},
		"other round item": {reenc(func(b *MaskBatch) { b.Reports[0].Round = 8 }), "holds item 0"},
		"repeated vehicle": {reenc(func(b *MaskBatch) { b.Reports[1].Index = 0 }), "strictly increasing"},
		"out of order":     {reenc(func(b *MaskBatch) { b.Reports[0].Index, b.Reports[1].Index = 4, 0 }), "strictly increasing"},
		"no items":         {empty, "without items"},
		"bad item":         {badItem, "batch item 0"},
		"truncated":        {good[:len(good)-3], "truncated"},
		"trailing bytes":   {append(bytes.Clone(good), 0), "trailing"},
		"host too long":    {longHost, "limit of 128"},
	} {
		_, err := ReadMaskReports(c.data)
		if err == nil || !errors.Is(err, ErrBadMaskMessage) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrBadMaskMessage naming %q", name, err, c.want)
		}
	}
	// Reports where answers are expected, and the reverse.
	if _, err := ReadMaskAnswers(good); err == nil || !strings.Contains(err.Error(), "item kind") {
		t.Errorf("reports read as answers: %v", err)
	}
	ans, _ := batchSamples()[2].MarshalBinary()
	if _, err := ReadMaskReports(ans); err == nil || !strings.Contains(err.Error(), "item kind") {
		t.Errorf("answers read as reports: %v", err)
	}
	// The encoder refuses the same.
	for name, b := range map[string]*MaskBatch{
		"empty":        {Round: 1},
		"mixed":        {Round: 9, Feeder: 1, Bus: 3, Reports: rep.Reports, Answers: batchSamples()[2].Answers},
		"other round":  {Round: 8, Feeder: 1, Bus: 3, Reports: rep.Reports},
		"out of order": {Round: 9, Feeder: 1, Bus: 3, Reports: []MaskedReport{rep.Reports[1], rep.Reports[0]}},
		"long host":    {Round: 9, Feeder: 1, Bus: 3, Host: strings.Repeat("h", 129), Reports: rep.Reports},
	} {
		if _, err := b.MarshalBinary(); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
}

// FuzzDecodeMaskBatch: no input makes the envelope's decoder panic or
// allocate beyond its limits, every refusal is ErrBadMaskMessage, and
// whatever decodes encodes and decodes to the same batch.
//
//	go test ./aggregate -run XXX -fuzz FuzzDecodeMaskBatch -fuzztime 30s
func FuzzDecodeMaskBatch(f *testing.F) {
	for _, b := range batchSamples() {
		data, _ := b.MarshalBinary()
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var b MaskBatch
		if err := b.UnmarshalBinary(data); err != nil {
			if !errors.Is(err, ErrBadMaskMessage) {
				t.Fatalf("a decoding error that is not ErrBadMaskMessage: %v", err)
			}
			return
		}
		again, err := b.MarshalBinary()
		if err != nil {
			t.Fatalf("a decoded batch does not encode: %v", err)
		}
		var back MaskBatch
		if err := back.UnmarshalBinary(again); err != nil || !reflect.DeepEqual(&back, &b) {
			t.Fatalf("batch does not survive a round trip: %v", err)
		}
	})
}
