package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strings"
	"testing"
)

var sampleOut = flag.String("sample", "", "also write the sample report to this file")

// sceHourly is the residential profile of docs/ARCHITECTURE.md C1, 12:00 to 11:00.
var sceHourly = []float64{1.651, 1.887, 2.090, 2.278, 2.392, 2.457, 2.462, 2.377, 2.275, 2.179, 2.001, 1.745,
	1.505, 1.303, 1.151, 1.036, 0.955, 0.888, 0.867, 0.963, 1.127, 1.348, 1.599, 1.829}

// sample builds a realistic report input: 48 quarter-hour slots from
// 19:00, a valley-filled aggregate, nEV EV profiles, nV bus voltages and
// nConv convergence points.
func sample(nEV, nV, nConv int) *Charging {
	const T, dt, peak, vmin = 48, 0.25, 3466.0, 0.95
	c := &Charging{
		Title: "gridveil: ieee13-paper, seed 1",
		Summary: [][2]string{
			{"scenario", "ieee13-paper"}, {"seed", "1"}, {"EVs", "84 (7 at each of 12 buses)"},
			{"slots", "48 × 15 min, 19:00–07:00"}, {"vmin", "0.95 pu"}, {"iterations", fmt.Sprint(nConv)},
		},
		VMin:  vmin,
		Notes: []string{"Baseline scaled from the SCE household profile.", "Voltages from linearized DistFlow with v0 = 1.04 pu <checked>."},
	}
	hmax := 0.0
	for _, v := range sceHourly {
		hmax = math.Max(hmax, v)
	}
	for t := range T {
		m := 19*60 + 15*t
		c.SlotLabels = append(c.SlotLabels, fmt.Sprintf("%02d:%02d", (m/60)%24, m%60))
		h := float64(m)/60 - 12 // hours since 12:00
		i := int(h)
		f := h - float64(i)
		c.Baseline = append(c.Baseline, peak*((1-f)*sceHourly[i]+f*sceHourly[(i+1)%24])/hmax)
	}
	// Water-fill 84 EVs of 18 kWh each (at 90 % efficiency) into the valley.
	energy := 84 * 18 / 0.9
	lo, hi := 0.0, 2*peak
	for range 100 {
		level := (lo + hi) / 2
		var e float64
		for _, d := range c.Baseline {
			e += math.Max(0, level-d) * dt
		}
		if e > energy {
			hi = level
		} else {
			lo = level
		}
	}
	fill := make([]float64, T)
	for t, d := range c.Baseline {
		fill[t] = math.Max(0, lo-d)
		c.Aggregate = append(c.Aggregate, d+fill[t])
	}
	for i := range nEV {
		y := make([]float64, T)
		for t := range T {
			if t >= 2*(i%5) && t < T-3*(i%4) {
				y[t] = math.Min(6.6, fill[t]/84*(1+0.4*math.Sin(float64(i)+float64(t)/5)))
			}
		}
		c.EVs = append(c.EVs, Series{Name: fmt.Sprintf("EV %d @ %d", i+1, 600+7*i), Y: y})
	}
	buses := []string{"650", "632", "670", "671", "680", "633", "634", "645", "646", "684", "611", "652", "692", "675"}
	for j := range nV {
		name := fmt.Sprintf("bus %d", j)
		if j < len(buses) {
			name = buses[j]
		}
		k := float64(j%len(buses)) / float64(len(buses)-1) // electrical distance, 0 at the slack
		y := make([]float64, T)
		for t := range T {
			y[t] = 1.04 - k*0.0885*c.Aggregate[t]/peak - 0.001*float64(j/len(buses))
		}
		c.Voltages = append(c.Voltages, Series{Name: name, Y: y})
	}
	for k := range nConv {
		c.Convergence = append(c.Convergence, ConvPoint{
			Iter:      k + 1,
			Objective: 2.1e8 * (1 + 0.5*math.Pow(0.96, float64(k))),
			Change:    150 * math.Pow(0.93, float64(k)),
			Violation: 0.02*math.Pow(0.97, float64(k)) - 0.004,
		})
	}
	if nConv > 0 {
		c.Convergence[nConv-1].Change = 0 // converged exactly: skipped on the log axis
	}
	return c
}

func render(t *testing.T, c *Charging) string {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteCharging(&buf, c); err != nil {
		t.Fatalf("WriteCharging: %v", err)
	}
	return buf.String()
}

var (
	svgRE   = regexp.MustCompile(`(?s)<svg\b.*?</svg>`)
	xmlnsRE = regexp.MustCompile(`xmlns(:\w+)?="http://www\.w3\.org/[^"]*"`)
)

// checkPage checks that page is a well-formed self-contained report.
func checkPage(t *testing.T, page string, nFig int) {
	t.Helper()
	for _, want := range []string{"<!DOCTYPE html>", "<html", "</html>", "<title>", "</body>"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, bad := range []string{"<?xml", "<script", "<link", "@import", "<img", "NaN"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	if rest := xmlnsRE.ReplaceAllString(page, ""); strings.Contains(rest, "http://") || strings.Contains(rest, "https://") {
		i := strings.Index(rest, "http")
		t.Errorf("page references an external URL near %q", rest[max(0, i-60):min(len(rest), i+60)])
	}
	svgs := svgRE.FindAllString(page, -1)
	if len(svgs) != nFig || strings.Count(page, "<svg") != nFig || strings.Count(page, "<figure>") != nFig {
		t.Errorf("page has %d <svg> elements, %d figures, want %d", len(svgs), strings.Count(page, "<figure>"), nFig)
	}
	for i, s := range svgs {
		d := xml.NewDecoder(strings.NewReader(s))
		for {
			_, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Errorf("svg %d is not well-formed XML: %v", i, err)
				break
			}
		}
	}
	for _, tag := range []string{"table", "figure", "figcaption", "p", "h2", "main", "tbody"} {
		if o, c := len(regexp.MustCompile(`<`+tag+`[ >]`).FindAllString(page, -1)), strings.Count(page, "</"+tag+">"); o != c {
			t.Errorf("<%s>: %d opened, %d closed", tag, o, c)
		}
	}
}

func TestWriteCharging(t *testing.T) {
	tests := []struct {
		name    string
		in      func() *Charging
		figs    int
		want    []string
		notWant []string
	}{{
		name: "paper sample",
		in:   func() *Charging { return sample(10, 14, 200) },
		figs: 4,
		want: []string{
			"gridveil: ieee13-paper, seed 1", "Aggregate load", "EV charging profiles", "Bus voltages",
			"Convergence", "vmin = 0.950 pu", "EV 10 @ 663", "675", "ieee13-paper", "0.95 pu",
			"v0 = 1.04 pu &lt;checked&gt;", "19:00", "07:00", "Figure 4.",
			"1 iteration with zero change is left out",
		},
		notWant: []string{"range of", "<checked>"},
	}, {
		name:    "many EVs without legend",
		in:      func() *Charging { return sample(40, 5, 10) },
		figs:    4,
		want:    []string{"charging power of 40 EVs", "drawn thin and without a legend"},
		notWant: []string{"EV 1 @ 600<"},
	}, {
		name:    "a sample of the fleet says so",
		in:      func() *Charging { c := sample(84, 5, 10); c.EVTotal = 504; return c },
		figs:    4,
		want:    []string{"84 of the 504 EVs of the fleet, an evenly spaced sample"},
		notWant: []string{"charging power of 84 EVs"},
	}, {
		name:    "many buses as envelope",
		in:      func() *Charging { return sample(3, 30, 10) },
		figs:    4,
		want:    []string{"range of 30 buses", "lowest: bus 27", "the band spans"},
		notWant: []string{">632<"},
	}, {
		name:    "no EVs, voltages or convergence",
		in:      func() *Charging { return sample(0, 0, 0) },
		figs:    1,
		want:    []string{"Aggregate load"},
		notWant: []string{"EV charging profiles", "Bus voltages", "Convergence"},
	}, {
		name: "no slots",
		in: func() *Charging {
			c := sample(0, 0, 5)
			c.SlotLabels, c.Baseline, c.Aggregate = nil, nil, nil
			return c
		},
		figs:    1,
		want:    []string{"Convergence"},
		notWant: []string{"Aggregate load"},
	}, {
		name: "one slot",
		in: func() *Charging {
			c := sample(2, 2, 1)
			c.SlotLabels, c.Baseline, c.Aggregate = c.SlotLabels[:1], c.Baseline[:1], c.Aggregate[:1]
			for i := range c.EVs {
				c.EVs[i].Y = c.EVs[i].Y[:1]
			}
			for i := range c.Voltages {
				c.Voltages[i].Y = c.Voltages[i].Y[:1]
			}
			return c
		},
		figs: 4,
	}, {
		name: "order book depth as staircases",
		in: func() *Charging {
			c := sample(0, 0, 0)
			c.Curves = []XYFigure{{Title: "Order book", XLabel: "cumulative kWh", YLabel: "price", Step: true,
				Curves:  []XYSeries{{Name: "bids", X: []float64{0, 2, 5}, Y: []float64{9, 7, 4}}, {Name: "asks", X: []float64{0, 3}, Y: []float64{2, 6}}},
				Caption: "Depth of the book."}}
			return c
		},
		figs: 2,
		want: []string{"Order book", "cumulative kWh", "bids", "asks", "Depth of the book."},
	}, {
		name: "no vmin and flat data",
		in: func() *Charging {
			c := sample(2, 2, 3)
			c.VMin = 0
			for t := range c.Baseline {
				c.Baseline[t], c.Aggregate[t] = 100, 100
			}
			for i := range c.Voltages {
				for t := range c.Voltages[i].Y {
					c.Voltages[i].Y[t] = 1
				}
			}
			return c
		},
		figs:    4,
		notWant: []string{"vmin = ", "Dashed"},
	}, {
		name: "convergence never positive",
		in: func() *Charging {
			c := sample(1, 1, 4)
			for i := range c.Convergence {
				c.Convergence[i].Change, c.Convergence[i].Violation = 0, -0.01
			}
			return c
		},
		figs: 4,
		want: []string{"never positive and is not drawn", "worst voltage violation"},
	}, {
		name: "markup in text is escaped",
		in: func() *Charging {
			c := sample(2, 2, 2)
			c.Title = `<script>alert("x")</script>`
			c.EVs[0].Name = `<b>"A&B"</b> with a name far too long for the legend column`
			c.Voltages[1].Name = "bus <1>"
			c.Summary = append(c.Summary, [2]string{"<k>", "<v>"})
			c.SlotLabels[0] = "<t>"
			return c
		},
		figs:    4,
		want:    []string{"&lt;script&gt;", "&lt;b&gt;&#34;A&amp;B&#34;&lt;/b&gt; with a name fa…", "bus &lt;1&gt;", "&lt;k&gt;", "&lt;t&gt;"},
		notWant: []string{"<b>", "<k>", "<t>", "far too long"},
	}, {
		name: "extreme values",
		in: func() *Charging {
			c := sample(2, 2, 6)
			c.Baseline[0], c.Aggregate[1] = 1e300, -1e300
			c.Convergence[0].Change, c.Convergence[1].Change = 1e308, 1e-308
			c.Convergence[2].Violation = 1e300
			for i := range c.Convergence[3:] {
				c.Convergence[3+i].Iter = 4
			}
			c.VMin = 1e200
			return c
		},
		figs:    4,
		notWant: []string{"Inf"},
	}, {
		name: "unnamed series and no title",
		in: func() *Charging {
			c := sample(2, 2, 2)
			c.Title = ""
			c.EVs[1].Name, c.Voltages[0].Name = "", ""
			return c
		},
		figs: 4,
		want: []string{"<title>gridveil report</title>", ">EV 2<", ">bus 1<"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			page := render(t, tc.in())
			checkPage(t, page, tc.figs)
			for _, w := range tc.want {
				if !strings.Contains(page, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(page, w) {
					t.Errorf("page contains %q", w)
				}
			}
		})
	}
}

func TestWriteChargingSample(t *testing.T) {
	page := render(t, sample(10, 14, 200))
	if *sampleOut != "" {
		if err := os.WriteFile(*sampleOut, []byte(page), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", *sampleOut, len(page))
	}
}

func TestWriteChargingInvalid(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *Charging) *Charging
		want string
	}{
		{"nil", func(*Charging) *Charging { return nil }, "nil"},
		{"short baseline", func(c *Charging) *Charging { c.Baseline = c.Baseline[:47]; return c }, "baseline has 47 values, want 48"},
		{"long aggregate", func(c *Charging) *Charging { c.Aggregate = append(c.Aggregate, 1); return c }, "aggregate has 49 values, want 48"},
		{"NaN baseline", func(c *Charging) *Charging { c.Baseline[3] = math.NaN(); return c }, "baseline: value at slot 3 is NaN"},
		{"EV wrong length", func(c *Charging) *Charging { c.EVs[4].Y = c.EVs[4].Y[:10]; return c }, `EV series "EV 5 @ 628" (#4) has 10 values`},
		{"EV NaN", func(c *Charging) *Charging { c.EVs[2].Y[7] = math.NaN(); return c }, `EV series "EV 3 @ 614" (#2): value at slot 7 is NaN`},
		{"unnamed EV Inf", func(c *Charging) *Charging {
			c.EVs[1].Name, c.EVs[1].Y[0] = "", math.Inf(1)
			return c
		}, "EV series #1 (unnamed): value at slot 0 is +Inf"},
		{"voltage -Inf", func(c *Charging) *Charging { c.Voltages[13].Y[47] = math.Inf(-1); return c }, `voltage series "675" (#13): value at slot 47 is -Inf`},
		{"voltage wrong length", func(c *Charging) *Charging { c.Voltages[5].Y = nil; return c }, `voltage series "633" (#5) has 0 values`},
		{"VMin NaN", func(c *Charging) *Charging { c.VMin = math.NaN(); return c }, "VMin is NaN"},
		{"convergence NaN", func(c *Charging) *Charging { c.Convergence[9].Violation = math.NaN(); return c }, "convergence point 9 (iteration 10): violation is NaN"},
		{"curve lengths differ", func(c *Charging) *Charging {
			c.Curves = []XYFigure{{Title: "book", Curves: []XYSeries{{Name: "bids", X: []float64{1, 2}, Y: []float64{1}}}}}
			return c
		}, "book: bids has 2 x and 1 y values"},
		{"curve NaN", func(c *Charging) *Charging {
			c.Curves = []XYFigure{{Title: "book", Curves: []XYSeries{{Name: "asks", X: []float64{1, math.NaN()}, Y: []float64{1, 2}}}}}
			return c
		}, "book: asks point 1 is (NaN, 2)"},
		{"convergence Inf objective", func(c *Charging) *Charging { c.Convergence[0].Objective = math.Inf(1); return c }, "objective is +Inf"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := WriteCharging(&buf, tc.edit(sample(10, 14, 20)))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if buf.Len() != 0 {
				t.Errorf("wrote %d bytes despite the error", buf.Len())
			}
		})
	}
}

func TestWriteChargingDeterministic(t *testing.T) {
	tests := []struct {
		name string
		in   func() *Charging
	}{
		{"paper sample", func() *Charging { return sample(10, 14, 200) }},
		{"envelope", func() *Charging { return sample(30, 40, 50) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := render(t, tc.in())
			b := render(t, tc.in())
			c := tc.in()
			render(t, c) // rendering must not change its input ...
			if d := render(t, c); a != b || a != d {
				t.Error("same input gave different bytes") // ... nor depend on earlier calls
			}
		})
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteChargingWriterError(t *testing.T) {
	err := WriteCharging(failWriter{}, sample(2, 2, 2))
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("got %v, want the writer's error", err)
	}
}

// TestWidePageTables: a table wider than the text column (the privacy
// comparison's 12 columns) is not clipped behind a scrollbar at the
// column's width: its wrapper grows to the table's own width up to the
// window's, and header cells may wrap; numbers stay on one line.
func TestWidePageTables(t *testing.T) {
	var buf bytes.Buffer
	tbl := Table{Title: "wide", Header: []string{"mechanism", "deviation kW", "iterations", "SO", "SO, averaged", "eavesdropper", "EV", "EVs colluding", "SO + EVs", "prior", "bytes/EV/iter", "CPU µs/EV/iter"}}
	tbl.Rows = [][]string{{"obfuscation", "15.6", "200", "0.96", "0.22", "0.35", "0.8", "0", "0", "0.83", "3840", "1.2"}}
	if err := WritePage(&buf, &Page{Title: "t", Tables: []Table{tbl}}); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, want := range []string{
		`<div class="wide"><table class="summary data">`,
		"div.wide{overflow-x:auto;width:max-content;min-width:100%;max-width:96vw",
		"table.data th{white-space:normal",
		"table.data td.n{white-space:nowrap}",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "table.data td,table.data th{padding-right:10px;white-space:nowrap}") {
		t.Error("every data cell is kept on one line, which makes wide tables overflow the column")
	}
}
