package runfile

import (
	"fmt"
	"html/template"
	"image/color"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/gridveil/gridveil/ldp"
	"github.com/gridveil/gridveil/report"
)

// LDP is ldp.json (schema gridveil/ldp/v1, docs/LDP.md).
type LDP struct {
	Schema     string         `json:"schema"`
	Seed       uint64         `json:"seed"`
	Meters     int            `json:"meters"`
	MaxKW      float64        `json:"max_kw"`
	Hour       float64        `json:"hour"`
	Trials     int            `json:"trials"`
	Epsilon    float64        `json:"epsilon"`
	Epsilons   []float64      `json:"epsilons"`
	Population LDPPopulation  `json:"population"`
	Mechanisms []LDPMechanism `json:"mechanisms"`
}

// LDPPopulation describes the meters' true readings.
type LDPPopulation struct {
	SumKW    float64 `json:"sum_kw"`     // of the clipped readings: what the estimators target
	MeanKW   float64 `json:"mean_kw"`    // of the clipped readings
	RawSumKW float64 `json:"raw_sum_kw"` // before clipping
	Clipped  int     `json:"clipped"`    // readings above max_kw
	// Generator says how the readings were drawn, enough to regenerate
	// them from the seed; ReadingsKW (--readings) lists them.
	Generator  LDPGenerator `json:"generator"`
	ReadingsKW []float64    `json:"readings_kw,omitempty"`
}

// LDPGenerator is the seed-reproducible description of the readings.
type LDPGenerator struct {
	BaseKW float64   `json:"base_kw"` // SCE household profile at hour
	PCG    [2]uint64 `json:"pcg"`     // the stream's seed and sequence
	Rule   string    `json:"rule"`
}

// LDPMechanism is one mechanism's results at --epsilon and its sweep.
type LDPMechanism struct {
	Name                 string          `json:"name"`
	Levels               int             `json:"levels,omitempty"`
	Alpha                *float64        `json:"alpha,omitempty"`
	Epsilon              float64         `json:"epsilon"`
	Sum                  LDPEstimate     `json:"sum"`
	Mean                 LDPEstimate     `json:"mean"`
	WorstVarianceDomain  float64         `json:"worst_report_variance_domain"`
	WorstVarianceKW2     float64         `json:"worst_report_variance_kw2"`
	FrequencyVarianceAt0 *float64        `json:"frequency_variance_f0,omitempty"`
	Histogram            []LDPLevel      `json:"histogram,omitempty"`
	Sweep                []LDPSweepPoint `json:"sweep"`
	EmpiricalVarianceZ   float64         `json:"empirical_variance_z"`
}

// LDPEstimate is an estimate (sum or mean) against the truth, with its
// theoretical and measured spread.
type LDPEstimate struct {
	TruthKW           float64    `json:"truth_kw"`
	EstimateKW        float64    `json:"estimate_kw"`
	ErrorKW           float64    `json:"error_kw"`
	CI95KW            [2]float64 `json:"ci95_kw"`
	TheoreticalVar    float64    `json:"theoretical_variance_kw2"`
	WorstCaseVar      float64    `json:"worst_case_variance_kw2"`
	EmpiricalVar      float64    `json:"empirical_variance_kw2"`
	EmpiricalVarSE    float64    `json:"empirical_variance_se_kw2"`
	EmpiricalBiasKW   float64    `json:"empirical_bias_kw"`
	EmpiricalBiasSEKW float64    `json:"empirical_bias_se_kw"`
	EmpiricalRMSEKW   float64    `json:"empirical_rmse_kw"`
	TheoreticalRMSEKW float64    `json:"theoretical_rmse_kw"`
}

// LDPLevel is one level of a histogram estimate (grr, oue).
type LDPLevel struct {
	LevelKW  float64 `json:"level_kw"`
	Truth    float64 `json:"truth"`
	Estimate float64 `json:"estimate"`
	SD       float64 `json:"sd"`
}

// LDPSweepPoint is the mean's error at one epsilon of --epsilons.
type LDPSweepPoint struct {
	Epsilon           float64 `json:"epsilon"`
	TheoreticalRMSEKW float64 `json:"theoretical_rmse_mean_kw"`
	EmpiricalRMSEKW   float64 `json:"empirical_rmse_mean_kw"`
}

// PrintLDPSummary prints each mechanism's mean estimate and spread.
func PrintLDPSummary(w io.Writer, res *LDP) {
	fmt.Fprintf(w, "gridveil ldp: %d meters at %g h (true mean %.4f kW, clip %g kW, %d clipped), epsilon %g, %d trials, seed %d\n",
		res.Meters, res.Hour, res.Population.MeanKW, res.MaxKW, res.Population.Clipped, res.Epsilon, res.Trials, res.Seed)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "  mechanism\tmean kW\terror kW\tsd theory kW\tsd measured kW\tvariance z\t")
	for _, m := range res.Mechanisms {
		name := m.Name
		if m.Levels > 0 {
			name = fmt.Sprintf("%s k=%d", m.Name, m.Levels)
		}
		fmt.Fprintf(tw, "  %s\t%.4f\t%+.4f\t%.4f\t%.4f\t%+.2f\t\n", name, m.Mean.EstimateKW, m.Mean.ErrorKW,
			math.Sqrt(m.Mean.TheoreticalVar), math.Sqrt(m.Mean.EmpiricalVar), m.EmpiricalVarianceZ)
	}
	tw.Flush()
}

// ldpPalette colours the mechanisms in their ldp.Names order.
var ldpPalette = []color.Color{
	color.NRGBA{0x1f, 0x77, 0xb4, 0xff}, color.NRGBA{0xff, 0x7f, 0x0e, 0xff}, color.NRGBA{0x2c, 0xa0, 0x2c, 0xff},
	color.NRGBA{0xd6, 0x27, 0x28, 0xff}, color.NRGBA{0x94, 0x67, 0xbd, 0xff},
}

// ldpColor is mechanism n's colour.
func ldpColor(n string) color.Color {
	for i, m := range ldp.Names() {
		if string(m) == n {
			return ldpPalette[i%len(ldpPalette)]
		}
	}
	return color.Black
}

// newLDPPlot is a plot in the house style of package report, with the
// legend inside the plot's top right corner.
func newLDPPlot(title, xlabel, ylabel string) *plot.Plot {
	p := report.NewPlot(title, xlabel, ylabel)
	p.Legend.TextStyle.Font = font.Font{Typeface: "Liberation", Variant: "Sans", Size: vg.Points(8.5)}
	p.Legend.Top = true
	return p
}

// ldpErrorFigure draws every mechanism's error against epsilon.
func ldpErrorFigure(res *LDP) (template.HTML, error) {
	p := newLDPPlot("Error of the mean estimate against epsilon", "epsilon per report", "RMSE of the mean [kW per meter]")
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	var ticks plot.ConstantTicks
	for _, e := range res.Epsilons {
		ticks = append(ticks, plot.Tick{Value: e, Label: strconv.FormatFloat(e, 'g', 4, 64)})
	}
	p.X.Tick.Marker, p.Y.Tick.Marker = ticks, plot.LogTicks{Prec: -1}
	// Explicit ranges: gonum widens an empty range by +-1, which a log
	// axis cannot show.
	p.X.Min, p.X.Max = res.Epsilons[0]/1.25, res.Epsilons[len(res.Epsilons)-1]*1.25
	p.Y.Min, p.Y.Max = math.Inf(1), math.Inf(-1)
	for _, m := range res.Mechanisms {
		for _, s := range m.Sweep {
			for _, v := range []float64{s.TheoreticalRMSEKW, s.EmpiricalRMSEKW} {
				if v > 0 {
					p.Y.Min, p.Y.Max = math.Min(p.Y.Min, v), math.Max(p.Y.Max, v)
				}
			}
		}
	}
	if !(p.Y.Min > 0) || math.IsInf(p.Y.Max, 0) { // no positive error at all
		p.Y.Min, p.Y.Max = 1e-3, 1
	}
	p.Y.Min, p.Y.Max = p.Y.Min/1.5, p.Y.Max*1.5
	for _, m := range res.Mechanisms {
		theo, emp := make(plotter.XYs, len(m.Sweep)), make(plotter.XYs, 0, len(m.Sweep))
		for i, s := range m.Sweep {
			theo[i] = plotter.XY{X: s.Epsilon, Y: s.TheoreticalRMSEKW}
			if s.EmpiricalRMSEKW > 0 {
				emp = append(emp, plotter.XY{X: s.Epsilon, Y: s.EmpiricalRMSEKW})
			}
		}
		col := ldpColor(m.Name)
		l, err := plotter.NewLine(theo)
		if err != nil {
			return "", err
		}
		l.Color, l.Width = col, vg.Points(1.5)
		sc, err := plotter.NewScatter(emp)
		if err != nil {
			return "", err
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: col, Radius: vg.Points(2.6), Shape: draw.CircleGlyph{}}
		p.Add(l, sc)
		name := m.Name
		if m.Levels > 0 {
			name = fmt.Sprintf("%s (k=%d)", m.Name, m.Levels)
		}
		p.Legend.Add(name, l, sc)
	}
	return report.PlotSVG(p, 540, 330, "error against epsilon")
}

// ldpHistogramFigure draws the histogram estimates; ok is false when no
// mechanism estimated one.
func ldpHistogramFigure(res *LDP) (template.HTML, bool, error) {
	p := newLDPPlot(fmt.Sprintf("Histogram estimates at epsilon %g", res.Epsilon), "level [kW]", "fraction of readings")
	found := false
	for _, m := range res.Mechanisms {
		if len(m.Histogram) == 0 {
			continue
		}
		found = true
		est, truth := make(plotter.XYs, len(m.Histogram)), make(plotter.XYs, len(m.Histogram))
		for i, h := range m.Histogram {
			est[i] = plotter.XY{X: h.LevelKW, Y: h.Estimate}
			truth[i] = plotter.XY{X: h.LevelKW, Y: h.Truth}
		}
		col := ldpColor(m.Name)
		l, sc, err := plotter.NewLinePoints(est)
		if err != nil {
			return "", false, err
		}
		l.Color, sc.Color, sc.Shape = col, col, draw.CircleGlyph{}
		tl, err := plotter.NewLine(truth)
		if err != nil {
			return "", false, err
		}
		tl.Color, tl.Dashes, tl.Width = col, []vg.Length{vg.Points(4), vg.Points(2)}, vg.Points(1.2)
		p.Add(l, sc, tl)
		p.Legend.Add(fmt.Sprintf("%s (k=%d) estimate", m.Name, m.Levels), l, sc)
		p.Legend.Add(fmt.Sprintf("%s truth", m.Name), tl)
	}
	if !found {
		return "", false, nil
	}
	svg, err := report.PlotSVG(p, 540, 300, "histogram estimates")
	return svg, true, err
}

// WriteLDPReport renders report.html of an ldp.json document.
func WriteLDPReport(w io.Writer, res *LDP) error {
	page := &report.Page{
		Title:        fmt.Sprintf("gridveil ldp: %d meters, epsilon %g, seed %d", res.Meters, res.Epsilon, res.Seed),
		SummaryTitle: "Set-up",
		Footer:       "Rendered by gridveil ldp; the figures are inline SVG. Schema of ldp.json and the formulas: docs/LDP.md.",
		Summary: [][2]string{
			{"meters", strconv.Itoa(res.Meters)},
			{"readings", fmt.Sprintf("SCE household profile at %g h × Gamma(2) factor of mean 1; true mean %.4f kW", res.Hour, res.Population.MeanKW)},
			{"clip range", fmt.Sprintf("[0, %g] kW (%d readings clipped)", res.MaxKW, res.Population.Clipped)},
			{"epsilon per report", fmt.Sprintf("%g (figure: %s)", res.Epsilon, strings.Trim(fmt.Sprint(res.Epsilons), "[]"))},
			{"trials", fmt.Sprintf("%d independent rounds per mechanism and epsilon", res.Trials)},
			{"seed", strconv.FormatUint(res.Seed, 10)},
		},
	}
	tbl := report.Table{
		Title:  "Mean reading per meter (kW), one round, and its spread over all rounds",
		Header: []string{"mechanism", "estimate", "error", "95% interval", "sd theory", "sd measured", "variance z", "worst per-report variance"},
	}
	for _, m := range res.Mechanisms {
		name := m.Name
		if m.Levels > 0 {
			name = fmt.Sprintf("%s (k=%d)", m.Name, m.Levels)
		}
		tbl.Rows = append(tbl.Rows, []string{name, fmt.Sprintf("%.4f", m.Mean.EstimateKW), fmt.Sprintf("%+.4f", m.Mean.ErrorKW),
			fmt.Sprintf("[%.4f, %.4f]", m.Mean.CI95KW[0], m.Mean.CI95KW[1]),
			fmt.Sprintf("%.4f", math.Sqrt(m.Mean.TheoreticalVar)), fmt.Sprintf("%.4f ± %.4f", math.Sqrt(m.Mean.EmpiricalVar), m.Mean.EmpiricalVarSE/(2*math.Sqrt(m.Mean.EmpiricalVar))),
			fmt.Sprintf("%+.2f", m.EmpiricalVarianceZ), fmt.Sprintf("%.3f", m.WorstVarianceDomain)})
	}
	page.Tables = []report.Table{tbl}
	svg, err := ldpErrorFigure(res)
	if err != nil {
		return err
	}
	page.Figures = append(page.Figures, report.Figure{SVG: svg, Caption: fmt.Sprintf(
		"Root mean squared error of the mean estimate (kW per meter) against each report's epsilon, %d meters: lines from the exact variance given the readings, dots measured over %d rounds.", res.Meters, res.Trials)})
	if svg, ok, err := ldpHistogramFigure(res); err != nil {
		return err
	} else if ok {
		page.Figures = append(page.Figures, report.Figure{SVG: svg, Caption: fmt.Sprintf(
			"Histogram estimates of one round at epsilon %g (solid) against the expected histogram of the randomly rounded readings (dashed).", res.Epsilon)})
	}
	page.Notes = []string{
		"Every meter clips its reading to the public range and perturbs it once per round with the mechanism; the system operator debiases the reports into an unbiased estimate of the sum of the clipped readings. The mean divides it by the number of meters.",
		"sd theory is the exact standard deviation of the estimate given the readings; sd measured is the standard deviation over the rounds (± its standard error); variance z is (measured − theoretical variance) / its standard error, which should be a standard normal draw. The 95% interval uses the worst-case variance over all readings, which the operator can compute without knowing any reading.",
		"Worst per-report variance is in units of the [−1, 1] domain (docs/ARCHITECTURE.md C5 quotes it at epsilon = 1: Duchi 4.68, piecewise 5.22, hybrid 4.29). Binary randomized response (grr, k=2) after randomised rounding is the same mechanism as Duchi's, so its line lies under Duchi's. Their error stops falling at large epsilon: their reports stay two-valued. grr and oue with many levels pay for their histogram resolution in the sum.",
	}
	if err := report.WritePage(w, page); err != nil {
		return fmt.Errorf("rendering report.html: %w", err)
	}
	return nil
}
