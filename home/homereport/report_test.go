package homereport

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
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

// TestLegendsOutsideFrames: in both figures no plot carries a legend of
// its own (it would be drawn inside the frame, over the data); the one
// legend sits in a column right of every plot's data area and inside the
// figure, lists every series, and its text is at least 10 pt (issue 12
// item 5: the legends were 8 pt and inside the frames).
func TestLegendsOutsideFrames(t *testing.T) {
	d := sample()
	day, err := dayFigure(d)
	if err != nil {
		t.Fatal(err)
	}
	front, err := frontFigure(d.Front)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		f       *figure
		entries int
	}{
		{"day", day, 1 + len(d.Meters)}, // load and every meter; SOC lines share the meters' colours
		{"front", front, 2},             // the optimal front and nill's point
	} {
		f := c.f
		w := f.w + f.legendWidth()
		dc := draw.New(vgimg.New(w, f.h))
		tiles, col := f.layout(dc)
		leg := f.legend.Rectangle(col)
		if f.legend.TextStyle.Font.Size < vg.Points(10) {
			t.Errorf("%s: legend text %v pt, want at least 10", c.name, f.legend.TextStyle.Font.Size.Points())
		}
		entry := f.legend.TextStyle.Rectangle("x").Max.Y
		if got := (leg.Max.Y - leg.Min.Y + f.legend.Padding) / (entry + f.legend.Padding); math.Abs(float64(got)-float64(c.entries)) > 0.01 {
			t.Errorf("%s: legend has %.2f entries, want %d", c.name, got, c.entries)
		}
		if leg.Max.X > dc.Max.X || leg.Min.Y < dc.Min.Y {
			t.Errorf("%s: legend %v leaves the figure %v", c.name, leg, dc.Rectangle)
		}
		for i, p := range f.plots {
			if r := p.Legend.Rectangle(tiles[i]); r.Max.Y != r.Min.Y {
				t.Errorf("%s: plot %d draws its own legend inside its frame", c.name, i)
			}
			if data := p.DataCanvas(tiles[i]); data.Max.X > leg.Min.X {
				t.Errorf("%s: plot %d's data area ends at x = %v, right of the legend's start %v", c.name, i, data.Max.X, leg.Min.X)
			}
		}
	}
}
