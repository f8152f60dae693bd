package homereport

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
)

func sample() *Data {
	n := 8
	d := &Data{Title: "t", HomeID: 3, Away: [2]int{2, 5}}
	for i := range n {
		d.SlotLabels = append(d.SlotLabels, "00:00")
		d.Load = append(d.Load, float64(i%3))
	}
	d.Meters = []Series{{Name: "optimal", Y: make([]float64, n)}, {Name: "nill", Y: d.Load}}
	d.SOC = []Series{{Name: "optimal", Y: make([]float64, n+1)}}
	d.Table = []Row{{Scheduler: "optimal", Cost: 1, F1: 0.3}, {Scheduler: "nill", Cost: 2, F1: 0.2}}
	d.Front = []Point{{Scheduler: "optimal", Alpha: 0.1, Cost: 2, F1: 0.3}, {Scheduler: "optimal", Alpha: 0.9, Cost: 1, F1: 0.4}, {Scheduler: "nill", Alpha: math.NaN(), Cost: 1.5, F1: 0.2}}
	return d
}

func TestWrite(t *testing.T) {
	var a, b bytes.Buffer
	if err := Write(&a, sample()); err != nil {
		t.Fatal(err)
	}
	if err := Write(&b, sample()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("same input, different bytes")
	}
	page := a.String()
	if strings.Count(page, "<svg") != 2 || !strings.Contains(page, "<tr><td>nill</td>") {
		t.Fatalf("page lacks figures or table rows")
	}
	for _, bad := range []string{"<script", "src=", "href=", "url("} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
}

func TestWriteInvalid(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Data)
		want   string
	}{
		{"short meter", func(d *Data) { d.Meters[0].Y = d.Meters[0].Y[:3] }, "meter optimal has 3 values, want 8"},
		{"NaN load", func(d *Data) { d.Load[2] = math.NaN() }, "load value 2 is NaN"},
		{"SOC length", func(d *Data) { d.SOC[0].Y = d.SOC[0].Y[:8] }, "SOC optimal has 8 values, want 9"},
		{"infinite front", func(d *Data) { d.Front[0].Cost = math.Inf(1) }, "non-finite"},
	}
	for _, c := range cases {
		d := sample()
		c.mutate(d)
		var buf bytes.Buffer
		err := Write(&buf, d)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) || buf.Len() != 0 {
			t.Errorf("%s: %v (wrote %d bytes), want %q", c.name, err, buf.Len(), c.want)
		}
	}
	if err := Write(&bytes.Buffer{}, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("nil: %v", err)
	}
}
