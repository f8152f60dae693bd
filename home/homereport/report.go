// Package homereport renders the HTML report of `gridveil home` (docs/ARCHITECTURE.md
// C4): a table of every scheduler's cost and privacy figures for the same
// homes and battery, one home's load against its meter and the battery's
// SOC over the day, and the cost-against-privacy front over an alpha sweep.
//
// It is a thin shell: it draws numbers its caller computed and nothing
// else. Figures are drawn with gonum.org/v1/plot's SVG backend and inlined,
// so the page needs no network, no external files and no JavaScript. The
// same input gives the same bytes.
package homereport

import (
	"errors"
	"fmt"
	"html/template"
	"image/color"
	"io"
	"math"
	"strconv"

	xfont "golang.org/x/image/font"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/gridveil/gridveil/report"
)

// ErrInvalid is wrapped by Write's errors for input it cannot draw.
var ErrInvalid = errors.New("homereport: invalid input")

// Series is one named line, one value per slot (SOC: one per boundary).
type Series struct {
	Name string
	Y    []float64
}

// Row is one scheduler's line of the table: means over the homes.
type Row struct {
	Scheduler string
	Cost      float64 // money per home-day
	Leakage   float64 // kW^2
	R2        float64
	LaggedR2  float64
	MI        float64 // bits
	F1        float64 // strongest attack
	F1CO      float64
	F1Edge    float64
	F1Prior   float64
}

// Point is one point of the cost-against-privacy front.
type Point struct {
	Scheduler string
	Alpha     float64 // NaN for schedulers that do not depend on alpha
	Cost      float64
	F1        float64
	R2        float64
	Leakage   float64
}

// Data is what the report shows.
type Data struct {
	Title      string
	Summary    [][2]string
	SlotLabels []string  // clock label per slot
	HomeID     int       // the home of the day figure
	Load       []float64 // its load, kW per slot
	Meters     []Series  // its meter under each scheduler
	SOC        []Series  // its SOC under each scheduler (slots + 1 values)
	Away       [2]int    // [depart, return) slots; equal values: no trip
	Table      []Row
	Front      []Point // empty: no sweep
	Notes      []string
}

const (
	figW vg.Length = 600
	figH vg.Length = 280
)

var palette = []color.Color{
	rgb(0x1f77b4), rgb(0xff7f0e), rgb(0x2ca02c), rgb(0xd62728),
	rgb(0x9467bd), rgb(0x8c564b), rgb(0xe377c2), rgb(0x7f7f7f),
}

func rgb(v uint32) color.Color {
	return color.NRGBA{R: uint8(v >> 16), G: uint8(v >> 8), B: uint8(v), A: 0xff}
}

// Write renders the report. Nothing is written unless the whole page
// rendered.
func Write(w io.Writer, d *Data) error {
	if err := validate(d); err != nil {
		return err
	}
	var figs []report.Figure
	if len(d.SlotLabels) > 0 && len(d.Meters) > 0 {
		svg, err := svgOf(dayFigure(d))
		if err != nil {
			return fmt.Errorf("homereport: day figure: %w", err)
		}
		figs = append(figs, report.Figure{SVG: template.HTML(svg), Caption: fmt.Sprintf(
			"Home %d over one day. Top: household load (grey, dashed) and what the meter shows under each scheduler, kW per slot. Bottom: the EV battery's state of charge; the shaded span is the trip (the EV is away, the meter shows the bare load).", d.HomeID)})
	}
	if len(d.Front) > 0 {
		svg, err := svgOf(frontFigure(d.Front))
		if err != nil {
			return fmt.Errorf("homereport: front figure: %w", err)
		}
		figs = append(figs, report.Figure{SVG: template.HTML(svg),
			Caption: "Cost against privacy, means over the homes. The optimal scheduler traces a front as alpha runs from near privacy only (α=0.01, the costlier end) to near cost only (α=0.99, the cheaper end); the other schedulers do not depend on alpha and are single points. Left: the strongest NILM attack's F1 (what a user can believe). Right: R² between meter and load (the seed paper's measure)."})
	}
	page := &report.Page{Title: d.Title, SummaryTitle: "Run", Summary: d.Summary, Figures: figs, Notes: d.Notes,
		Footer: "Rendered by gridveil home; the figures are inline SVG. Formats and method: docs/HOME.md."}
	if len(d.Table) > 0 {
		t := report.Table{
			Title:  "Every scheduler on the same homes and battery (means per home-day)",
			Header: []string{"scheduler", "cost", "leakage Σ(ΔP)² [kW²]", "R²", "lagged R² (±4)", "MI [bit]", "attacker F1", "F1 CO", "F1 edge", "F1 habits only"},
		}
		f := func(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }
		for _, r := range d.Table {
			t.Rows = append(t.Rows, []string{r.Scheduler, f(r.Cost, 3), f(r.Leakage, 2), f(r.R2, 3), f(r.LaggedR2, 3), f(r.MI, 3), f(r.F1, 3), f(r.F1CO, 3), f(r.F1Edge, 3), f(r.F1Prior, 3)})
		}
		t.Caption = "Attacker F1 is the strongest NILM attack's (the figure a user can believe); F1 habits only is what an attacker knowing only the household's habits achieves."
		page.Tables = []report.Table{t}
	}
	if err := report.WritePage(w, page); err != nil {
		return fmt.Errorf("homereport: %w", err)
	}
	return nil
}

func validate(d *Data) error {
	if d == nil {
		return fmt.Errorf("%w: nil data", ErrInvalid)
	}
	n := len(d.SlotLabels)
	check := func(what string, y []float64, want int) error {
		if len(y) != want {
			return fmt.Errorf("%w: %s has %d values, want %d", ErrInvalid, what, len(y), want)
		}
		for i, v := range y {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("%w: %s value %d is %v", ErrInvalid, what, i, v)
			}
		}
		return nil
	}
	if len(d.Meters) > 0 {
		if err := check("load", d.Load, n); err != nil {
			return err
		}
	}
	for _, s := range d.Meters {
		if err := check("meter "+s.Name, s.Y, n); err != nil {
			return err
		}
	}
	for _, s := range d.SOC {
		if err := check("SOC "+s.Name, s.Y, n+1); err != nil {
			return err
		}
	}
	for _, p := range d.Front {
		for _, v := range []float64{p.Cost, p.F1, p.R2, p.Leakage} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("%w: front point %s alpha %v has a non-finite value", ErrInvalid, p.Scheduler, p.Alpha)
			}
		}
	}
	return nil
}

func sans(size vg.Length) font.Font {
	return font.Font{Typeface: "Liberation", Variant: "Sans", Size: size}
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font = sans(vg.Points(10.5))
	p.Title.TextStyle.Font.Weight = xfont.WeightBold
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = sans(vg.Points(9))
		a.Tick.Label.Font = sans(vg.Points(8))
	}
	p.X.Label.Text, p.Y.Label.Text = x, y
	// No entries go to p.Legend: it would be drawn inside the frame, over
	// the data. Each figure has one legend column beside its plots.
	g := plotter.NewGrid()
	g.Vertical.Color, g.Horizontal.Color = rgb(0xe6e6e6), rgb(0xe6e6e6)
	p.Add(g)
	return p
}

// legendPt is the legends' text size: larger than the axis labels (9 pt),
// since the legend is what tells six overlapping lines apart.
const legendPt = 10.5

// newLegend returns a legend in the figures' style, for a column outside
// the plots' frames.
func newLegend() *plot.Legend {
	l := plot.NewLegend()
	l.TextStyle.Font = sans(vg.Points(legendPt))
	l.Top, l.Left = true, true
	l.ThumbnailWidth = vg.Points(24)
	l.Padding = vg.Points(4)
	return &l
}

// figure is a grid of plots with one legend column to the right of all of
// them, so that no legend covers data.
type figure struct {
	plots      []*plot.Plot // row-major, rows x cols
	rows, cols int
	legend     *plot.Legend
	w, h       vg.Length // the plots' area; the legend column is added to w
	label      string
}

// legendGap separates the plots from the legend column.
const legendGap = vg.Length(10)

// legendWidth is the legend column's width.
func (f *figure) legendWidth() vg.Length {
	r := f.legend.Rectangle(draw.Canvas{})
	return r.Max.X - r.Min.X + 2*legendGap
}

// layout splits the figure's canvas into the plots' tiles and the legend
// column; the column starts below the first row's title.
func (f *figure) layout(c draw.Canvas) (tiles []draw.Canvas, legend draw.Canvas) {
	plots, legend := c, c
	plots.Max.X = c.Max.X - f.legendWidth()
	legend.Min.X = plots.Max.X + legendGap
	legend.Max.Y -= vg.Points(22)
	t := draw.Tiles{Rows: f.rows, Cols: f.cols, PadX: vg.Points(12), PadY: vg.Points(10), PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(4)}
	for i := range f.plots {
		tiles = append(tiles, t.At(plots, i%f.cols, i/f.cols))
	}
	return tiles, legend
}

func (f *figure) svg() (string, error) {
	return render(f.w+f.legendWidth(), f.h, f.label, func(dc draw.Canvas) {
		tiles, legend := f.layout(dc)
		for i, p := range f.plots {
			p.Draw(tiles[i])
		}
		f.legend.Draw(legend)
	})
}

func line(xy plotter.XYs, c color.Color, width float64, dashed bool) (*plotter.Line, error) {
	l, err := plotter.NewLine(xy)
	if err != nil {
		return nil, err
	}
	l.LineStyle = draw.LineStyle{Color: c, Width: vg.Points(width)}
	if dashed {
		l.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
	}
	return l, nil
}

func slotXY(y []float64) plotter.XYs {
	xy := make(plotter.XYs, len(y))
	for i, v := range y {
		xy[i] = plotter.XY{X: float64(i), Y: v}
	}
	return xy
}

// clockTicks labels every 3 hours of a day of n slots.
func clockTicks(labels []string, boundaries bool) plot.ConstantTicks {
	n := len(labels)
	step := max(1, n/8)
	var ticks plot.ConstantTicks
	for i := 0; i <= n; i += step {
		lab := "24:00"
		if i < n {
			lab = labels[i]
		}
		if !boundaries && i == n {
			break
		}
		ticks = append(ticks, plot.Tick{Value: float64(i), Label: lab})
	}
	return ticks
}

func awayBand(p *plot.Plot, away [2]int, ymax float64) error {
	if away[1] <= away[0] {
		return nil
	}
	poly, err := plotter.NewPolygon(plotter.XYs{
		{X: float64(away[0]), Y: 0}, {X: float64(away[1]), Y: 0},
		{X: float64(away[1]), Y: ymax}, {X: float64(away[0]), Y: ymax},
	})
	if err != nil {
		return err
	}
	poly.Color = color.NRGBA{R: 0xbb, G: 0xbb, B: 0xbb, A: 0x40}
	poly.LineStyle.Width = 0
	p.Add(poly)
	return nil
}

func dayFigure(d *Data) (*figure, error) {
	leg := newLegend()
	top := newPlot(fmt.Sprintf("Home %d: load and meter", d.HomeID), "", "power [kW]")
	ymax := 0.0
	for _, v := range d.Load {
		ymax = math.Max(ymax, v)
	}
	for _, s := range d.Meters {
		for _, v := range s.Y {
			ymax = math.Max(ymax, v)
		}
	}
	ytop := 1.05*ymax + 0.1 // the legend is outside: no headroom needed
	if err := awayBand(top, d.Away, ytop); err != nil {
		return nil, err
	}
	l, err := line(slotXY(d.Load), rgb(0x555555), 1.2, true)
	if err != nil {
		return nil, err
	}
	top.Add(l)
	leg.Add("load", l)
	// One legend for both panels: scheduler i has the same colour in the
	// meter and the SOC panel.
	for i, s := range d.Meters {
		w := 1.0
		if i == 0 {
			w = 1.8
		}
		l, err := line(slotXY(s.Y), palette[i%len(palette)], w, false)
		if err != nil {
			return nil, err
		}
		top.Add(l)
		leg.Add(s.Name, l)
	}
	top.X.Tick.Marker = clockTicks(d.SlotLabels, false)
	top.X.Min, top.X.Max = 0, float64(len(d.SlotLabels))
	top.Y.Min, top.Y.Max = 0, ytop

	bot := newPlot("State of charge", "time", "SOC")
	if err := awayBand(bot, d.Away, 1); err != nil {
		return nil, err
	}
	for i, s := range d.SOC {
		l, err := line(slotXY(s.Y), palette[i%len(palette)], 1.3, false)
		if err != nil {
			return nil, err
		}
		bot.Add(l)
		if i >= len(d.Meters) || d.Meters[i].Name != s.Name {
			leg.Add(s.Name+" (SOC)", l)
		}
	}
	bot.X.Tick.Marker = clockTicks(d.SlotLabels, true)
	bot.X.Min, bot.X.Max = 0, float64(len(d.SlotLabels))
	bot.Y.Min, bot.Y.Max = 0, 1
	return &figure{plots: []*plot.Plot{top, bot}, rows: 2, cols: 1, legend: leg, w: figW, h: 2 * figH, label: "load, meter and SOC"}, nil
}

func frontFigure(pts []Point) (*figure, error) {
	var plots []*plot.Plot
	leg := newLegend()
	for _, m := range []struct {
		title, ylabel string
		get           func(Point) float64
	}{
		{"Attacker F1 against cost", "attacker F1 (macro)", func(p Point) float64 { return p.F1 }},
		{"R² against cost", "R² (meter, load)", func(p Point) float64 { return p.R2 }},
	} {
		p := newPlot(m.title, "cost per home-day [money]", m.ylabel)
		// The optimal front in alpha order, then the other schedulers.
		var front plotter.XYs
		var labels []string
		for _, q := range pts {
			if !math.IsNaN(q.Alpha) {
				front = append(front, plotter.XY{X: q.Cost, Y: m.get(q)})
				labels = append(labels, "α="+strconv.FormatFloat(q.Alpha, 'g', 3, 64))
			}
		}
		if len(front) > 0 {
			l, err := line(front, palette[0], 1.6, false)
			if err != nil {
				return nil, err
			}
			sc, err := plotter.NewScatter(front)
			if err != nil {
				return nil, err
			}
			sc.GlyphStyle = draw.GlyphStyle{Color: palette[0], Radius: vg.Points(2), Shape: draw.CircleGlyph{}}
			p.Add(l, sc)
			if len(plots) == 0 { // both panels share the legend
				leg.Add("optimal (α sweep)", l, sc)
			}
			// Label the two ends.
			ends := plotter.XYLabels{XYs: plotter.XYs{front[0], front[len(front)-1]}, Labels: []string{labels[0], labels[len(labels)-1]}}
			lab, err := plotter.NewLabels(ends)
			if err != nil {
				return nil, err
			}
			for i := range lab.TextStyle {
				lab.TextStyle[i].Font = sans(vg.Points(7.5))
			}
			lab.Offset = vg.Point{X: vg.Points(3), Y: vg.Points(3)}
			p.Add(lab)
		}
		k := 1
		for _, q := range pts {
			if !math.IsNaN(q.Alpha) {
				continue
			}
			sc, err := plotter.NewScatter(plotter.XYs{{X: q.Cost, Y: m.get(q)}})
			if err != nil {
				return nil, err
			}
			shapes := []draw.GlyphDrawer{draw.SquareGlyph{}, draw.TriangleGlyph{}, draw.PlusGlyph{}, draw.CrossGlyph{}, draw.RingGlyph{}}
			sc.GlyphStyle = draw.GlyphStyle{Color: palette[k%len(palette)], Radius: vg.Points(3.2), Shape: shapes[(k-1)%len(shapes)]}
			p.Add(sc)
			if len(plots) == 0 {
				leg.Add(q.Scheduler, sc)
			}
			k++
		}
		p.Y.Min = 0
		// Room above the data for the end labels only; the legend is outside.
		hi := 0.0
		for _, q := range pts {
			hi = math.Max(hi, m.get(q))
		}
		p.Y.Max = math.Max(1.12*hi, 0.05)
		lo, hiX := math.Inf(1), math.Inf(-1)
		for _, q := range pts {
			lo, hiX = math.Min(lo, q.Cost), math.Max(hiX, q.Cost)
		}
		pad := 0.05 * math.Max(hiX-lo, 0.01)
		p.X.Min, p.X.Max = lo-pad, hiX+pad
		plots = append(plots, p)
	}
	return &figure{plots: plots, rows: 1, cols: 2, legend: leg, w: figW, h: figH * 1.15, label: "cost against privacy"}, nil
}

func svgOf(f *figure, err error) (string, error) {
	if err != nil {
		return "", err
	}
	return f.svg()
}

// render draws a figure into an inline <svg> element in the house style
// of package report.
func render(w, h vg.Length, label string, fn func(draw.Canvas)) (string, error) {
	svg, err := report.RenderSVG(w, h, label, fn)
	return string(svg), err
}
