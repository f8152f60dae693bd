package report

import (
	"bytes"
	"errors"
	"fmt"
	"html"
	"html/template"
	"image/color"
	"math"
	"strconv"
	"strings"

	xfont "golang.org/x/image/font"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Figure geometry. SVG user units are points; the <svg> element is sized
// in CSS pixels (4/3 px per pt), so a 540x270 pt canvas shows at 720x360 px.
const (
	figW    vg.Length = 540 // pt
	figH    vg.Length = 270 // pt
	convH   vg.Length = 390 // pt, two stacked panels
	pxPerPt           = 4.0 / 3.0

	maxLegendEVs     = 12   // more EV series are drawn thin, without legend
	maxVoltageLines  = 15   // more voltage series are drawn as an envelope
	violationFloor   = 1e-6 // pu; feasible iterations are drawn here on the log axis
	maxLegendRunes   = 28   // longer legend names are shortened
	legendMinWidth   = 100  // pt; keeps the plots of one page equally wide
	maxHistoryDots   = 40   // convergence points are marked up to this many
	minorTickMaxSlot = 200  // per-slot minor ticks up to this many slots
)

// palette is a colour-blind-friendly-ish qualitative palette (Tableau 10
// plus two dark tones), used in order for series lines.
var palette = []color.Color{
	rgb(0x1f77b4), rgb(0xff7f0e), rgb(0x2ca02c), rgb(0xd62728),
	rgb(0x9467bd), rgb(0x8c564b), rgb(0xe377c2), rgb(0x7f7f7f),
	rgb(0xbcbd22), rgb(0x17becf), rgb(0x393b79), rgb(0x637939),
}

var (
	colBaseline = rgb(0x4d4d4d)
	colAgg      = rgb(0x1f77b4)
	colBand     = color.NRGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0x48}
	colEnvelope = color.NRGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0x40}
	colLowest   = rgb(0xd62728)
	colLimit    = rgb(0x000000)
	colGrid     = rgb(0xe4e4e4)
	limitDashes = []vg.Length{vg.Points(5), vg.Points(3)}
)

func rgb(v uint32) color.Color {
	return color.NRGBA{R: uint8(v >> 16), G: uint8(v >> 8), B: uint8(v), A: 0xff}
}

// sans is the Liberation Sans face at the given size. The SVG names the
// family; finishSVG adds metric-compatible fallbacks (Arial, Helvetica).
func sans(size vg.Length) font.Font {
	return font.Font{Typeface: "Liberation", Variant: "Sans", Size: size}
}

func textStyle(size vg.Length) text.Style {
	return text.Style{Color: color.Black, Font: sans(size), Handler: plot.DefaultTextHandler}
}

// chargingFigures renders every figure that c has data for, in page order.
func chargingFigures(c *Charging) ([]Figure, error) {
	var figs []Figure
	add := func(svg, caption string, err error) error {
		if err != nil {
			return err
		}
		figs = append(figs, Figure{
			SVG:     template.HTML(svg), // built by finishSVG from gonum's escaped output
			Caption: caption,
		})
		return nil
	}
	if len(c.SlotLabels) > 0 {
		svg, capt, err := loadFigure(c)
		if err := add(svg, capt, err); err != nil {
			return nil, fmt.Errorf("aggregate load: %w", err)
		}
		if len(c.EVs) > 0 {
			svg, capt, err := evFigure(c)
			if err := add(svg, capt, err); err != nil {
				return nil, fmt.Errorf("EV charging profiles: %w", err)
			}
		}
		if len(c.Voltages) > 0 {
			svg, capt, err := voltageFigure(c)
			if err := add(svg, capt, err); err != nil {
				return nil, fmt.Errorf("bus voltages: %w", err)
			}
		}
	}
	if c.Band != nil && len(c.Band.Messages) > 0 && len(c.SlotLabels) >= 2 {
		svg, capt, err := bandFigure(c)
		if err := add(svg, capt, err); err != nil {
			return nil, fmt.Errorf("obfuscation band: %w", err)
		}
	}
	for _, l := range c.Lines {
		if len(l.Labels) < 2 || len(l.Series) == 0 {
			continue
		}
		svg, err := lineFigure(&l)
		if err := add(svg, l.Caption, err); err != nil {
			return nil, fmt.Errorf("%s: %w", l.Title, err)
		}
	}
	for _, f := range c.Curves {
		if len(f.Curves) == 0 {
			continue
		}
		svg, err := xyFigure(&f)
		if err := add(svg, f.Caption, err); err != nil {
			return nil, fmt.Errorf("%s: %w", f.Title, err)
		}
	}
	if len(c.Convergence) > 0 {
		svg, capt, err := convergenceFigure(c.Convergence)
		if err := add(svg, capt, err); err != nil {
			return nil, fmt.Errorf("convergence: %w", err)
		}
	}
	return figs, nil
}

// loadFigure draws paper Fig. 3: baseline and aggregate load, with the
// EV energy between them shaded.
func loadFigure(c *Charging) (string, string, error) {
	n := len(c.SlotLabels)
	p := newPlot("Aggregate load", "time", "load [kW]")
	leg := newLegend()
	base, agg := slotXYs(c.Baseline), slotXYs(c.Aggregate)
	if n >= 2 {
		band := make(plotter.XYs, 0, 2*n)
		band = append(band, agg...)
		for i := n - 1; i >= 0; i-- {
			band = append(band, base[i])
		}
		poly, err := plotter.NewPolygon(band)
		if err != nil {
			return "", "", err
		}
		poly.Color = colBand
		poly.LineStyle.Width = 0
		p.Add(poly)
		leg.Add("EV charging", poly)
	}
	bl, err := newLine(base, draw.LineStyle{Color: colBaseline, Width: vg.Points(1.4), Dashes: []vg.Length{vg.Points(4), vg.Points(2)}})
	if err != nil {
		return "", "", err
	}
	al, err := newLine(agg, draw.LineStyle{Color: colAgg, Width: vg.Points(1.9)})
	if err != nil {
		return "", "", err
	}
	p.Add(bl, al)
	leg.Add("baseline", bl)
	leg.Add("baseline + EVs", al)
	setSlotAxis(p, c.SlotLabels)

	svg, err := renderSVG(figW, figH, "Aggregate load", func(dc draw.Canvas) {
		drawWithLegend(dc, p, &leg)
	})
	bmin, bmax := minMax(c.Baseline)
	amin, amax := minMax(c.Aggregate)
	capt := fmt.Sprintf("Aggregate load (paper Fig. 3): total baseline load and baseline plus EV charging "+
		"per slot; the shaded band is the EV energy that fills the valley. "+
		"Baseline %s to %s kW; with EVs %s to %s kW; EVs draw %s kWh from the grid over %d slots.",
		num(bmin, 0), num(bmax, 0), num(amin, 0), num(amax, 0),
		num(evEnergy(c), 1), n)
	return svg, capt, err
}

// evEnergy is the energy between the aggregate and the baseline in kWh,
// taking the slot length from the clock labels when they are HH:MM and
// one hour otherwise; it is only used for the caption.
func evEnergy(c *Charging) float64 {
	dt := slotHours(c.SlotLabels)
	var e float64
	for t := range c.Aggregate {
		e += (c.Aggregate[t] - c.Baseline[t]) * dt
	}
	return e
}

// slotHours guesses the slot length from the first two "HH:MM" labels.
func slotHours(labels []string) float64 {
	if len(labels) < 2 {
		return 1
	}
	a, ok1 := clockMinutes(labels[0])
	b, ok2 := clockMinutes(labels[1])
	if !ok1 || !ok2 {
		return 1
	}
	d := (b - a + 24*60) % (24 * 60)
	if d == 0 {
		return 1
	}
	return float64(d) / 60
}

func clockMinutes(s string) (int, bool) {
	h, m, ok := strings.Cut(s, ":")
	if !ok {
		return 0, false
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, false
	}
	return hh*60 + mm, true
}

// evFigure draws paper Fig. 4: the selected EV charging profiles.
func evFigure(c *Charging) (string, string, error) {
	p := newPlot("EV charging profiles", "time", "charging power [kW]")
	leg := newLegend()
	many := len(c.EVs) > maxLegendEVs
	for i, s := range c.EVs {
		sty := seriesStyle(i)
		if many {
			sty.Width = vg.Points(0.7)
			sty.Dashes = nil
		}
		l, err := newLine(slotXYs(s.Y), sty)
		if err != nil {
			return "", "", err
		}
		p.Add(l)
		if !many {
			leg.Add(legendName(s.Name, "EV", i), l)
		}
	}
	setSlotAxis(p, c.SlotLabels)
	p.Y.Min = math.Min(p.Y.Min, 0)

	svg, err := renderSVG(figW, figH, "EV charging profiles", func(dc draw.Canvas) {
		drawWithLegend(dc, p, &leg)
	})
	var peak float64
	for _, s := range c.EVs {
		_, mx := minMax(s.Y)
		peak = math.Max(peak, mx)
	}
	var capt string
	if c.EVTotal > len(c.EVs) {
		capt = fmt.Sprintf("EV charging profiles (paper Fig. 4): charging power per slot of %d of the %d EVs of the fleet, an evenly spaced sample; highest power among them %s kW.",
			len(c.EVs), c.EVTotal, num(peak, 2))
	} else {
		capt = fmt.Sprintf("EV charging profiles (paper Fig. 4): charging power of %d EVs per slot; highest power %s kW.",
			len(c.EVs), num(peak, 2))
	}
	if many {
		capt += fmt.Sprintf(" With more than %d profiles the lines are drawn thin and without a legend.", maxLegendEVs)
	}
	return svg, capt, err
}

// voltageFigure draws paper Fig. 6: bus voltages and the vmin limit, or
// the min/max envelope and the lowest bus when there are many buses.
func voltageFigure(c *Charging) (string, string, error) {
	n := len(c.SlotLabels)
	p := newPlot("Bus voltages", "time", "voltage [pu]")
	leg := newLegend()

	// The lowest bus is the one with the smallest voltage over all slots.
	low, lowT, lowV := 0, 0, math.Inf(1)
	for i, s := range c.Voltages {
		for t, v := range s.Y {
			if v < lowV {
				low, lowT, lowV = i, t, v
			}
		}
	}
	envelope := len(c.Voltages) > maxVoltageLines
	if envelope {
		lo := make([]float64, n)
		hi := make([]float64, n)
		for t := range n {
			lo[t], hi[t] = math.Inf(1), math.Inf(-1)
			for _, s := range c.Voltages {
				lo[t] = math.Min(lo[t], s.Y[t])
				hi[t] = math.Max(hi[t], s.Y[t])
			}
		}
		band := make(plotter.XYs, 0, 2*n)
		band = append(band, slotXYs(hi)...)
		los := slotXYs(lo)
		for t := n - 1; t >= 0; t-- {
			band = append(band, los[t])
		}
		poly, err := plotter.NewPolygon(band)
		if err != nil {
			return "", "", err
		}
		poly.Color = colEnvelope
		poly.LineStyle.Width = 0
		p.Add(poly)
		leg.Add(fmt.Sprintf("range of %d buses", len(c.Voltages)), poly)
		l, err := newLine(slotXYs(c.Voltages[low].Y), draw.LineStyle{Color: colLowest, Width: vg.Points(1.6)})
		if err != nil {
			return "", "", err
		}
		p.Add(l)
		leg.Add("lowest: "+legendName(c.Voltages[low].Name, "bus", low), l)
	} else {
		for i, s := range c.Voltages {
			l, err := newLine(slotXYs(s.Y), seriesStyle(i))
			if err != nil {
				return "", "", err
			}
			p.Add(l)
			leg.Add(legendName(s.Name, "bus", i), l)
		}
	}
	hasLimit := c.VMin > 0
	if hasLimit {
		x1 := float64(n - 1)
		if n == 1 {
			x1 = 0.5
		}
		lim, err := newLine(plotter.XYs{{X: 0, Y: c.VMin}, {X: x1, Y: c.VMin}},
			draw.LineStyle{Color: colLimit, Width: vg.Points(1.2), Dashes: limitDashes})
		if err != nil {
			return "", "", err
		}
		p.Add(lim)
		leg.Add("vmin", lim)
	}
	setSlotAxis(p, c.SlotLabels)
	if hasLimit {
		// Leave room under the limit line for its label.
		span := p.Y.Max - p.Y.Min
		if span <= 0 {
			span = 0.01
		}
		p.Y.Min = math.Min(p.Y.Min, c.VMin-0.12*span)
		sty := textStyle(vg.Points(8.5))
		sty.YAlign = draw.YTop
		lab, err := plotter.NewLabels(plotter.XYLabels{
			XYs:    plotter.XYs{{X: 0, Y: c.VMin}},
			Labels: []string{"vmin = " + num(c.VMin, 3) + " pu"},
		})
		if err != nil {
			return "", "", err
		}
		lab.TextStyle = []text.Style{sty}
		lab.Offset = vg.Point{X: vg.Points(4), Y: vg.Points(-3)}
		p.Add(lab)
	}

	svg, err := renderSVG(figW, figH, "Bus voltages", func(dc draw.Canvas) {
		drawWithLegend(dc, p, &leg)
	})
	var capt string
	if envelope {
		capt = fmt.Sprintf("Bus voltages (paper Fig. 6): the band spans the lowest to the highest voltage over %d buses in each slot; "+
			"the line is the bus that reaches the lowest voltage.", len(c.Voltages))
	} else {
		capt = fmt.Sprintf("Bus voltages (paper Fig. 6): voltage of each of %d buses per slot.", len(c.Voltages))
	}
	if hasLimit {
		capt += fmt.Sprintf(" Dashed: vmin = %s pu.", num(c.VMin, 3))
	}
	capt += fmt.Sprintf(" Lowest voltage %s pu at %s, %s.",
		num(lowV, 4), legendName(c.Voltages[low].Name, "bus", low), c.SlotLabels[lowT])
	if hasLimit {
		if lowV < c.VMin {
			capt += fmt.Sprintf(" The limit is violated by up to %s pu.", num(c.VMin-lowV, 4))
		} else {
			capt += fmt.Sprintf(" Margin to the limit %s pu.", num(lowV-c.VMin, 4))
		}
	}
	return svg, capt, err
}

// convergenceFigure draws the solver history: the change of the
// aggregate load and the worst voltage violation, both on log axes.
func convergenceFigure(pts []ConvPoint) (string, string, error) {
	var change, viol plotter.XYs
	skipped := 0
	for _, q := range pts {
		if q.Change > 0 {
			change = append(change, log10XY(float64(q.Iter), q.Change))
		} else {
			skipped++
		}
		viol = append(viol, log10XY(float64(q.Iter), math.Max(q.Violation, violationFloor)))
	}
	var plots []*plot.Plot
	if len(change) > 0 {
		p := newPlot("Convergence: change of aggregate load", "iteration", "max change [kW]")
		p.X.Tick.Marker = niceTicks{integer: true}
		if err := addHistory(p, change, colAgg); err != nil {
			return "", "", err
		}
		setLogY(p)
		plots = append(plots, p)
	}
	p := newPlot("Convergence: worst voltage violation", "iteration", "max(vmin − V, 1e-6) [pu]")
	p.X.Tick.Marker = niceTicks{integer: true}
	if err := addHistory(p, viol, colLowest); err != nil {
		return "", "", err
	}
	setLogY(p)
	plots = append(plots, p)

	// Share the iteration range, which the change panel may not reach.
	xlo, xhi := math.Inf(1), math.Inf(-1)
	for _, q := range pts {
		xlo, xhi = math.Min(xlo, float64(q.Iter)), math.Max(xhi, float64(q.Iter))
	}
	for _, p := range plots {
		p.X.Min, p.X.Max = xlo, xhi
	}

	h := convH
	if len(plots) == 1 {
		h = figH
	}
	svg, err := renderSVG(figW, h, "Convergence", func(dc draw.Canvas) {
		dc = draw.Crop(dc, vg.Points(4), -vg.Points(8), vg.Points(2), -vg.Points(4))
		tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadY: vg.Points(16)}
		// Line up the panels' data areas on the left edge.
		cs := make([]draw.Canvas, len(plots))
		var left vg.Length
		for i, p := range plots {
			cs[i] = tiles.At(dc, 0, i)
			left = max(left, p.DataCanvas(cs[i]).Min.X-cs[i].Min.X)
		}
		for i, p := range plots {
			c := cs[i]
			p.Draw(draw.Crop(c, left-(p.DataCanvas(c).Min.X-c.Min.X), 0, 0, 0))
		}
	})

	last := pts[len(pts)-1]
	var capt string
	if len(change) > 0 {
		capt = "Convergence over " + strconv.Itoa(len(pts)) + " iterations. Top: largest per-slot change of the aggregate load " +
			"between iterations (kW, log scale). Bottom: worst voltage violation vmin − V (pu, log scale); "
	} else {
		capt = "Convergence over " + strconv.Itoa(len(pts)) + " iterations: worst voltage violation vmin − V (pu, log scale); " +
			"the change of the aggregate load is never positive and is not drawn; "
	}
	capt += "iterations that meet the limit (≤ 0) are drawn at the 1e-6 floor."
	if skipped > 0 && len(change) > 0 {
		if skipped == 1 {
			capt += " 1 iteration with zero change is left out of the top panel."
		} else {
			capt += fmt.Sprintf(" %d iterations with zero change are left out of the top panel.", skipped)
		}
	}
	capt += fmt.Sprintf(" Last iteration %d: objective %s kW², change %s kW, violation %s pu.",
		last.Iter, sci(last.Objective), sci(last.Change), sci(last.Violation))
	return svg, capt, err
}

// addHistory adds a convergence history to p as a line, with a dot at
// each point when there are few enough to tell apart.
func addHistory(p *plot.Plot, xy plotter.XYs, col color.Color) error {
	l, err := newLine(xy, draw.LineStyle{Color: col, Width: vg.Points(1.3)})
	if err != nil {
		return err
	}
	p.Add(l)
	if len(xy) <= maxHistoryDots {
		sc, err := plotter.NewScatter(xy)
		if err != nil {
			return err
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: col, Radius: vg.Points(1.8), Shape: draw.CircleGlyph{}}
		p.Add(sc)
	}
	return nil
}

// newPlot returns a plot with the report's fonts and a light grid.
func newPlot(title, xlabel, ylabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font = sans(vg.Points(11))
	p.Title.TextStyle.Font.Weight = xfont.WeightBold
	p.Title.Padding = vg.Points(6)
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = sans(vg.Points(9.5))
		a.Tick.Label.Font = sans(vg.Points(8.5))
		a.Padding = vg.Points(4)
	}
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	p.X.Tick.Marker = niceTicks{}
	p.Y.Tick.Marker = niceTicks{}
	g := plotter.NewGrid()
	g.Vertical.Color = colGrid
	g.Horizontal.Color = colGrid
	g.Vertical.Width = vg.Points(0.5)
	g.Horizontal.Width = vg.Points(0.5)
	p.Add(g)
	return p
}

// newLegend returns a legend for drawing beside the plot (see drawWithLegend).
func newLegend() plot.Legend {
	l := plot.NewLegend()
	l.TextStyle.Font = sans(vg.Points(8.5))
	l.Top = true
	l.Left = true
	l.ThumbnailWidth = vg.Points(18)
	l.Padding = vg.Points(2)
	return l
}

// drawWithLegend draws p into dc and, if leg has entries, the legend in a
// column to the right of the plot, so that it never hides data.
func drawWithLegend(dc draw.Canvas, p *plot.Plot, leg *plot.Legend) {
	dc = draw.Crop(dc, vg.Points(4), -vg.Points(8), vg.Points(2), -vg.Points(4))
	r := leg.Rectangle(dc)
	lw := r.Max.X - r.Min.X
	if lw <= 0 {
		p.Draw(dc)
		return
	}
	const gap = 10
	lw = max(lw, legendMinWidth) + vg.Points(gap)
	if mx := 0.4 * (dc.Max.X - dc.Min.X); lw > mx {
		lw = mx
	}
	pc := draw.Crop(dc, 0, -lw, 0, 0)
	p.Draw(pc)
	data := p.DataCanvas(pc)
	leg.Draw(draw.Canvas{
		Canvas: dc.Canvas,
		Rectangle: vg.Rectangle{
			Min: vg.Point{X: pc.Max.X + vg.Points(gap), Y: data.Min.Y},
			Max: vg.Point{X: dc.Max.X, Y: data.Max.Y},
		},
	})
}

// setSlotAxis fixes the x range to the slots and labels every few slots
// with its clock label; every slot gets a minor tick.
func setSlotAxis(p *plot.Plot, labels []string) {
	n := len(labels)
	p.X.Min, p.X.Max = 0, float64(n-1)
	if n == 1 {
		p.X.Min, p.X.Max = -0.5, 0.5
	}
	sty := textStyle(vg.Points(8.5))
	var widest vg.Length
	for _, l := range labels {
		widest = max(widest, sty.Width(l))
	}
	// About 360 pt of axis remain beside a legend.
	fit := int(360 / (widest.Points() + 12))
	fit = min(max(fit, 2), 13)
	step := (n + fit - 1) / fit
	for _, s := range tickSteps(labels) {
		if (n+s-1)/s <= fit {
			step = s
			break
		}
	}
	var ticks plot.ConstantTicks
	for i, l := range labels {
		switch {
		case i%step == 0:
			ticks = append(ticks, plot.Tick{Value: float64(i), Label: l})
		case n <= minorTickMaxSlot:
			ticks = append(ticks, plot.Tick{Value: float64(i)})
		}
	}
	p.X.Tick.Marker = ticks
}

// tickSteps lists candidate slot counts between labelled ticks, smallest
// first. For clock labels whose slot length divides an hour, the steps
// land on whole clock divisions (15 min, 30 min, 1 h, 2 h, 3 h, ...).
func tickSteps(labels []string) []int {
	generic := []int{1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 144, 192, 288}
	dt := slotHours(labels) * 60
	if len(labels) < 2 || dt != math.Trunc(dt) || 60%int(dt) != 0 {
		return generic
	}
	m := int(dt)
	var steps []int
	for _, d := range []int{1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 720, 1440} {
		if d%m == 0 {
			steps = append(steps, d/m)
		}
	}
	return steps
}

// setLogY fixes p's y axis, whose data are already log10 values (see
// log10XY), to whole decades and labels it in the original units. This
// avoids plot.LogScale, which panics on non-positive values and centres
// the axis label at the arithmetic, not logarithmic, midpoint.
func setLogY(p *plot.Plot) {
	lo, hi := math.Floor(p.Y.Min), math.Ceil(p.Y.Max)
	if hi <= lo {
		hi = lo + 1
	}
	p.Y.Min, p.Y.Max = lo, hi
	p.Y.Tick.Marker = decadeTicks{}
}

// log10XY is the point (x, log10 y) for drawing on a setLogY axis.
func log10XY(x, y float64) plotter.XY { return plotter.XY{X: x, Y: math.Log10(y)} }

// niceTicks labels a linear axis at about five round values (steps of
// 1, 2, 2.5 or 5 times a power of ten) with just enough decimals, and
// puts a minor tick half-way between labels.
type niceTicks struct {
	integer bool // label whole numbers only (iteration counts)
}

// Ticks implements plot.Ticker.
func (nt niceTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) || math.IsInf(hi-lo, 0) {
		return nil
	}
	raw := (hi - lo) / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * mag
	for _, m := range []float64{1, 2, 2.5, 5} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	if nt.integer && step < 1 {
		step = 1
	}
	prec := max(0, -int(math.Floor(math.Log10(step)+1e-9)))
	if f := step * math.Pow(10, float64(prec)); math.Abs(f-math.Round(f)) > 1e-6 {
		prec++
	}
	var ticks []plot.Tick
	first := math.Ceil(lo/step-1e-9) * step
	for k := 0; k < 100; k++ {
		v := first + float64(k)*step
		if v > hi+step*1e-9 {
			break
		}
		if math.Abs(v) < step*1e-9 {
			v = 0 // no "-0"
		}
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', prec, 64)})
		if m := v + step/2; m <= hi && !(nt.integer && step == 1) {
			ticks = append(ticks, plot.Tick{Value: m})
		}
	}
	if m := first - step/2; m >= lo && !(nt.integer && step == 1) {
		ticks = append(ticks, plot.Tick{Value: m})
	}
	return ticks
}

// decadeTicks labels an axis of log10 values at powers of ten,
// thinning the labels when the axis spans many decades, with minor ticks
// at 2..9 times each power when it spans at most three decades.
type decadeTicks struct{}

// Ticks implements plot.Ticker.
func (decadeTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) || math.IsInf(hi-lo, 0) {
		return nil
	}
	e0, e1 := int(math.Ceil(lo-1e-9)), int(math.Floor(hi+1e-9))
	nd := e1 - e0
	step := max((nd+4)/5, 1)
	var ticks []plot.Tick
	for e := e0; e <= e1; e++ {
		t := plot.Tick{Value: float64(e)}
		if (e-e0)%step == 0 {
			t.Label = decadeLabel(e)
		}
		ticks = append(ticks, t)
		if nd > 3 {
			continue
		}
		for k := 2; k < 10; k++ {
			if v := float64(e) + math.Log10(float64(k)); v <= hi {
				ticks = append(ticks, plot.Tick{Value: v})
			}
		}
	}
	return ticks
}

func decadeLabel(e int) string {
	if e >= -3 && e <= 4 {
		return strconv.FormatFloat(math.Pow(10, float64(e)), 'f', -1, 64)
	}
	return "1e" + strconv.Itoa(e)
}

// seriesStyle is the line style of series i: palette colours, then the
// same colours dashed.
func seriesStyle(i int) draw.LineStyle {
	s := draw.LineStyle{Color: palette[i%len(palette)], Width: vg.Points(1.3)}
	if (i/len(palette))%2 == 1 {
		s.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
	}
	return s
}

func newLine(xy plotter.XYs, sty draw.LineStyle) (*plotter.Line, error) {
	l, err := plotter.NewLine(xy)
	if err != nil {
		return nil, err
	}
	l.LineStyle = sty
	return l, nil
}

func slotXYs(y []float64) plotter.XYs {
	xy := make(plotter.XYs, len(y))
	for i, v := range y {
		xy[i] = plotter.XY{X: float64(i), Y: v}
	}
	return xy
}

// legendName is the series name, or kind and number for an unnamed one,
// shortened to fit the legend column.
func legendName(name, kind string, i int) string {
	if name == "" {
		return fmt.Sprintf("%s %d", kind, i+1)
	}
	r := []rune(name)
	if len(r) > maxLegendRunes {
		return string(r[:maxLegendRunes-1]) + "…"
	}
	return name
}

func minMax(y []float64) (lo, hi float64) {
	if len(y) == 0 {
		return 0, 0
	}
	lo, hi = y[0], y[0]
	for _, v := range y[1:] {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	return lo, hi
}

func num(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }

func sci(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

// renderSVG draws one figure and returns it as an inline <svg> element.
// gonum/plot panics on some degenerate input; that becomes an error.
func renderSVG(w, h vg.Length, label string, drawFn func(dc draw.Canvas)) (svg string, err error) {
	defer func() {
		if r := recover(); r != nil {
			svg, err = "", fmt.Errorf("plotting %q: %v", label, r)
		}
	}()
	cv := vgsvg.New(w, h)
	drawFn(draw.New(cv))
	var buf bytes.Buffer
	if _, err := cv.WriteTo(&buf); err != nil {
		return "", fmt.Errorf("writing SVG for %q: %w", label, err)
	}
	return finishSVG(buf.String(), w, h, label)
}

// finishSVG turns a standalone SVG document from vgsvg into an element
// for inline use: the XML prolog and comment go, the root element is
// sized in CSS pixels with an accessible label, and font families get
// metric-compatible fallbacks for viewers without Liberation fonts.
func finishSVG(doc string, w, h vg.Length, label string) (string, error) {
	i := strings.Index(doc, "<svg")
	if i < 0 {
		return "", errors.New("no <svg> element in plot output")
	}
	j := strings.IndexByte(doc[i:], '>')
	if j < 0 {
		return "", errors.New("unterminated <svg> tag in plot output")
	}
	body := doc[i+j+1:]
	body = strings.ReplaceAll(body, "font-family:Liberation Sans;",
		"font-family:'Liberation Sans',Arial,Helvetica,sans-serif;")
	ff := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	head := fmt.Sprintf(`<svg xmlns="http://www.w3.org/2000/svg" width="%s" height="%s" viewBox="0 0 %s %s" role="img" aria-label="%s">`,
		ff(math.Round(w.Points()*pxPerPt)), ff(math.Round(h.Points()*pxPerPt)),
		ff(w.Points()), ff(h.Points()), html.EscapeString(label))
	return head + body, nil
}

// bandFigure draws paper Fig. 5: a vehicle's true schedule inside the band
// of the obfuscated values it sent.
func bandFigure(c *Charging) (string, string, error) {
	b := c.Band
	n := len(c.SlotLabels)
	lo, hi := make([]float64, n), make([]float64, n)
	for t := 0; t < n; t++ {
		lo[t], hi[t] = math.Inf(1), math.Inf(-1)
		for _, m := range b.Messages {
			lo[t] = math.Min(lo[t], m[t])
			hi[t] = math.Max(hi[t], m[t])
		}
	}
	p := newPlot("Obfuscated messages", "time", "power [kW]")
	leg := newLegend()
	top, bot := slotXYs(hi), slotXYs(lo)
	poly := make(plotter.XYs, 0, 2*n)
	poly = append(poly, top...)
	for i := n - 1; i >= 0; i-- {
		poly = append(poly, bot[i])
	}
	band, err := plotter.NewPolygon(poly)
	if err != nil {
		return "", "", err
	}
	band.Color = colBand
	band.LineStyle.Width = 0
	p.Add(band)
	leg.Add(fmt.Sprintf("range of the %d values sent", len(b.Messages)), band)
	truth, err := newLine(slotXYs(b.Truth), draw.LineStyle{Color: colAgg, Width: vg.Points(1.9)})
	if err != nil {
		return "", "", err
	}
	p.Add(truth)
	leg.Add("true schedule", truth)
	setSlotAxis(p, c.SlotLabels)
	svg, err := renderSVG(figW, figH, "Obfuscated messages", func(dc draw.Canvas) {
		drawWithLegend(dc, p, &leg)
	})
	capt := fmt.Sprintf("Obfuscated messages (paper Fig. 5): what %s sent in iteration %d, %d values per slot, against its true charging schedule. The SO, which knows the bus key, averages them back to the truth.",
		b.Name, b.Iteration, len(b.Messages))
	return svg, capt, err
}

// lineFigure draws a LineFigure with the slot axis of its labels.
func lineFigure(l *LineFigure) (string, error) {
	p := newPlot(l.Title, "time", l.YLabel)
	leg := newLegend()
	for i, sr := range l.Series {
		ln, err := newLine(slotXYs(sr.Y), seriesStyle(i))
		if err != nil {
			return "", err
		}
		p.Add(ln)
		leg.Add(legendName(sr.Name, "series", i), ln)
	}
	setSlotAxis(p, l.Labels)
	p.Y.Min = math.Min(p.Y.Min, 0)
	return renderSVG(figW, figH, l.Title, func(dc draw.Canvas) {
		drawWithLegend(dc, p, &leg)
	})
}

// xyFigure draws an XYFigure, as staircases if f.Step.
func xyFigure(f *XYFigure) (string, error) {
	p := newPlot(f.Title, f.XLabel, f.YLabel)
	leg := newLegend()
	for i, sr := range f.Curves {
		xy := make(plotter.XYs, 0, 2*len(sr.X))
		for k := range sr.X {
			if f.Step && k > 0 {
				xy = append(xy, plotter.XY{X: sr.X[k], Y: sr.Y[k-1]})
			}
			xy = append(xy, plotter.XY{X: sr.X[k], Y: sr.Y[k]})
		}
		if len(xy) == 0 {
			continue
		}
		ln, err := newLine(xy, seriesStyle(i))
		if err != nil {
			return "", err
		}
		p.Add(ln)
		leg.Add(legendName(sr.Name, "curve", i), ln)
	}
	p.X.Min = math.Min(p.X.Min, 0)
	p.Y.Min = math.Min(p.Y.Min, 0)
	return renderSVG(figW, figH, f.Title, func(dc draw.Canvas) {
		drawWithLegend(dc, p, &leg)
	})
}
