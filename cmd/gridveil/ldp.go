package main

import (
	"errors"
	"fmt"
	"hash/fnv"
	"html/template"
	"image/color"
	"io"
	"math"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/gridveil/gridveil/grid"
	"github.com/gridveil/gridveil/ldp"
	"github.com/gridveil/gridveil/report"
	"github.com/gridveil/gridveil/scenario"
)

// Limits of gridveil ldp's flags.
const (
	ldpMaxMeters = 100_000_000
	ldpMaxTrials = 1_000_000
)

type ldpFlags struct {
	meters    int
	epsilon   float64
	mechanism string
	levels    int
	maxKW     float64
	hour      float64
	trials    int
	epsilons  string
	seed      uint64
	out       string
	workers   int
	readings  bool
	quiet     bool
}

// newLDPCmd returns "gridveil ldp": the C5 experiment on a synthetic
// population of household meters.
func newLDPCmd() *cobra.Command {
	var f ldpFlags
	cmd := &cobra.Command{
		Use:   "ldp",
		Short: "Measure LDP smart-meter aggregation: estimates, errors and variances per mechanism",
		Long: `ldp draws a population of household meter readings, lets every meter
perturb its reading with each epsilon-LDP mechanism (grr, oue, duchi,
piecewise, hybrid; docs/ARCHITECTURE.md C5), and has the system operator estimate the
population's sum, mean and (grr, oue) histogram. Each mechanism runs
--trials independent rounds at every epsilon of --epsilons (and --epsilon),
which measures the estimators' variance against the theory. It writes into
--out:

  ldp.json      per mechanism: estimate, truth, error, confidence interval,
                theoretical and empirical variance, histogram, error per epsilon;
                how the readings were drawn (and, with --readings, every one)
  report.html   a self-contained report: the error of every mechanism against
                epsilon, the histograms, and the numbers

Readings: the SCE household profile at --hour times a Gamma(2) factor of mean
1, one per meter, clipped to [0, --max-kw]. The same flags and seed give the
same files, byte for byte. docs/LDP.md documents the mechanisms and ldp.json.`,
		Example: `  gridveil ldp --out out/ldp
  gridveil ldp --meters 100000 --epsilon 0.5 --mechanism duchi,hybrid --out out/ldp
  gridveil ldp --mechanism oue --levels 32 --epsilon 2 --out out/oue`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runLDP(cmd, &f) },
	}
	fl := cmd.Flags()
	fl.IntVar(&f.meters, "meters", 10000, "number of household meters")
	fl.Float64Var(&f.epsilon, "epsilon", 1, "epsilon of each meter's report, for the detailed results")
	fl.StringVar(&f.mechanism, "mechanism", "all", "all, or a comma-separated list of: "+ldpMechanismList())
	fl.IntVar(&f.levels, "levels", 0, "levels k of grr and oue (0: grr 2, oue 16)")
	fl.Float64Var(&f.maxKW, "max-kw", 10, "public clip bound of a reading, kW")
	fl.Float64Var(&f.hour, "hour", 18, "clock hour of the readings, 0 <= hour < 24 (18: the SCE evening peak)")
	fl.IntVar(&f.trials, "trials", 200, "independent rounds per mechanism and epsilon (>= 2) for the empirical variance")
	fl.StringVar(&f.epsilons, "epsilons", "0.1,0.25,0.5,1,2,4,8", "comma-separated epsilons for the error-against-epsilon figure (--epsilon is added)")
	fl.Uint64Var(&f.seed, "seed", 1, "random seed")
	fl.StringVar(&f.out, "out", filepath.Join("out", "ldp"), "directory for ldp.json and report.html (created if missing)")
	fl.IntVar(&f.workers, "workers", 0, "goroutines (default: all cores); results do not depend on it")
	fl.BoolVar(&f.readings, "readings", false, "also write every meter's true reading into ldp.json (population.readings_kw, about 19 bytes per meter), to recompute the truth and the errors without regenerating the readings")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "print nothing but errors")
	addForceFlag(fl)
	return cmd
}

func ldpMechanismList() string {
	var s []string
	for _, n := range ldp.Names() {
		s = append(s, string(n))
	}
	return strings.Join(s, ", ")
}

// ldpConfig is a validated set of flags.
type ldpConfig struct {
	ldpFlags
	mechs []ldp.Name
	sweep []float64 // ascending, contains epsilon
}

func (f *ldpFlags) validate() (*ldpConfig, error) {
	c := &ldpConfig{ldpFlags: *f}
	if f.meters < 1 || f.meters > ldpMaxMeters {
		return nil, fmt.Errorf("--meters %d: give 1 to %d meters", f.meters, ldpMaxMeters)
	}
	if f.trials < 2 || f.trials > ldpMaxTrials {
		return nil, fmt.Errorf("--trials %d: give 2 to %d rounds (a variance needs at least 2)", f.trials, ldpMaxTrials)
	}
	if !(f.epsilon >= ldp.MinEpsilon && f.epsilon <= ldp.MaxEpsilon) {
		return nil, fmt.Errorf("--epsilon %v: give a value in [%g, %g], e.g. 1", f.epsilon, float64(ldp.MinEpsilon), float64(ldp.MaxEpsilon))
	}
	if !(f.maxKW > 0) || math.IsInf(f.maxKW, 0) {
		return nil, fmt.Errorf("--max-kw %v: give a positive clip bound in kW, e.g. 10", f.maxKW)
	}
	if !(f.hour >= 0 && f.hour < 24) {
		return nil, fmt.Errorf("--hour %v: give a clock hour in [0, 24)", f.hour)
	}
	if f.workers < 0 {
		return nil, fmt.Errorf("--workers %d: give a positive number, or 0 for all cores", f.workers)
	}
	if strings.TrimSpace(strings.ToLower(f.mechanism)) == "all" {
		c.mechs = ldp.Names()
	} else {
		for _, s := range strings.Split(f.mechanism, ",") {
			n, err := ldp.ParseName(s)
			if err != nil {
				return nil, fmt.Errorf("--mechanism %q: %q is not a mechanism; give all or a list of %s", f.mechanism, strings.TrimSpace(s), ldpMechanismList())
			}
			if !slices.Contains(c.mechs, n) {
				c.mechs = append(c.mechs, n)
			}
		}
	}
	if f.levels != 0 && !slices.ContainsFunc(c.mechs, ldp.Name.Discrete) {
		return nil, fmt.Errorf("--levels %d: only grr and oue take levels, and --mechanism %s has neither", f.levels, f.mechanism)
	}
	c.sweep = []float64{f.epsilon}
	for _, s := range strings.Split(f.epsilons, ",") {
		if strings.TrimSpace(s) == "" {
			continue
		}
		e, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || !(e >= ldp.MinEpsilon && e <= ldp.MaxEpsilon) {
			return nil, fmt.Errorf("--epsilons %q: %q is not an epsilon in [%g, %g]", f.epsilons, strings.TrimSpace(s), float64(ldp.MinEpsilon), float64(ldp.MaxEpsilon))
		}
		if !slices.Contains(c.sweep, e) {
			c.sweep = append(c.sweep, e)
		}
	}
	slices.Sort(c.sweep)
	for _, n := range c.mechs {
		if _, err := ldp.New(ldp.Config{Mechanism: n, Epsilon: f.epsilon, MaxKW: f.maxKW, Levels: c.levelsFor(n)}); err != nil {
			return nil, fmt.Errorf("--levels %d with --mechanism %s: %w", f.levels, n, err)
		}
	}
	return c, nil
}

// levelsFor passes --levels to the mechanisms that take levels.
func (c *ldpConfig) levelsFor(n ldp.Name) int {
	if n.Discrete() {
		return c.levels
	}
	return 0
}

// ldpReadingsRule is how ldpReadings draws, as ldp.json states it.
const ldpReadingsRule = "x_i = base_kw * (E1 + E2) / 2 for meters i = 0..meters-1 in order, E1 then E2 = rand.New(rand.NewPCG(seed, 0)).ExpFloat64() (Go math/rand/v2); a reading is clipped to [0, max_kw] before it is perturbed"

// ldpReadings draws the readings: SCE(hour) times (E1 + E2)/2, E ~ Exp(1).
func ldpReadings(meters int, hour float64, rng *rand.Rand) []float64 {
	base := grid.SCEResidential.At(hour)
	xs := make([]float64, meters)
	for i := range xs {
		xs[i] = base * (rng.ExpFloat64() + rng.ExpFloat64()) / 2
	}
	return xs
}

// ldpJob is one mechanism at one epsilon, run for all trials.
type ldpJob struct {
	mech  *ldp.Mechanism
	first ldp.Estimate   // the sum estimate of the first trial
	hist  []ldp.Estimate // its histogram (grr, oue)
	sums  []float64      // sum estimate of every trial
}

// ldpStream makes each (mechanism, epsilon) draw from its own stream, so a
// mechanism's numbers do not depend on which others run or on --epsilons.
func ldpStream(n ldp.Name, eps float64) uint64 {
	h := fnv.New64a()
	h.Write([]byte(n))
	return h.Sum64() ^ math.Float64bits(eps)
}

func (j *ldpJob) run(xs []float64, trials int, rng *rand.Rand) error {
	a := j.mech.NewAggregator()
	j.sums = make([]float64, trials)
	for r := range j.sums {
		a.Reset()
		for _, x := range xs {
			if err := a.Add(j.mech.Perturb(x, rng)); err != nil {
				return err
			}
		}
		s := a.Sum()
		j.sums[r] = s.Value
		if r == 0 {
			j.first = s
			if j.mech.Name().Discrete() {
				h, err := a.Histogram()
				if err != nil {
					return err
				}
				j.hist = h
			}
		}
	}
	return nil
}

func runLDP(cmd *cobra.Command, f *ldpFlags) error {
	c, err := f.validate()
	if err != nil {
		return err
	}
	stdout := cmd.OutOrStdout()
	if f.quiet {
		stdout = io.Discard
	}
	xs := ldpReadings(c.meters, c.hour, rand.New(rand.NewPCG(c.seed, 0)))
	jobs := make([]*ldpJob, 0, len(c.mechs)*len(c.sweep))
	for _, n := range c.mechs {
		for _, e := range c.sweep {
			m, err := ldp.New(ldp.Config{Mechanism: n, Epsilon: e, MaxKW: c.maxKW, Levels: c.levelsFor(n)})
			if err != nil {
				return fmt.Errorf("--epsilons: %s at epsilon %g: %w", n, e, err)
			}
			jobs = append(jobs, &ldpJob{mech: m})
		}
	}
	workers := c.workers
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	errs := make([]error, len(jobs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				j := jobs[i]
				errs[i] = j.run(xs, c.trials, rand.New(rand.NewPCG(c.seed, ldpStream(j.mech.Name(), j.mech.Epsilon()))))
			}
		}()
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	res, err := newLDPResult(c, xs, jobs)
	if err != nil {
		return err
	}
	files := map[string]func(io.Writer) error{
		"ldp.json":    func(w io.Writer) error { return scenario.WriteJSON(w, res) },
		"report.html": func(w io.Writer) error { return writeLDPReport(w, c, res) },
	}
	written, err := writeRun(cmd, c.out, files)
	if err != nil {
		return err
	}
	printLDPSummary(stdout, c, res)
	printFiles(stdout, written)
	return nil
}

// ldpResult is ldp.json (schema gridveil/ldp/v1, docs/LDP.md).
type ldpResult struct {
	Schema     string         `json:"schema"`
	Seed       uint64         `json:"seed"`
	Meters     int            `json:"meters"`
	MaxKW      float64        `json:"max_kw"`
	Hour       float64        `json:"hour"`
	Trials     int            `json:"trials"`
	Epsilon    float64        `json:"epsilon"`
	Epsilons   []float64      `json:"epsilons"`
	Population ldpPopulation  `json:"population"`
	Mechanisms []ldpMechanism `json:"mechanisms"`
}

type ldpPopulation struct {
	SumKW    float64 `json:"sum_kw"`     // of the clipped readings: what the estimators target
	MeanKW   float64 `json:"mean_kw"`    // of the clipped readings
	RawSumKW float64 `json:"raw_sum_kw"` // before clipping
	Clipped  int     `json:"clipped"`    // readings above max_kw
	// Generator says how the readings were drawn, enough to regenerate
	// them from the seed; ReadingsKW (--readings) lists them.
	Generator  ldpGenerator `json:"generator"`
	ReadingsKW []float64    `json:"readings_kw,omitempty"`
}

// ldpGenerator is the seed-reproducible description of the readings.
type ldpGenerator struct {
	BaseKW float64   `json:"base_kw"` // SCE household profile at hour
	PCG    [2]uint64 `json:"pcg"`     // the stream's seed and sequence
	Rule   string    `json:"rule"`
}

type ldpMechanism struct {
	Name                 string       `json:"name"`
	Levels               int          `json:"levels,omitempty"`
	Alpha                *float64     `json:"alpha,omitempty"`
	Epsilon              float64      `json:"epsilon"`
	Sum                  ldpEstimate  `json:"sum"`
	Mean                 ldpEstimate  `json:"mean"`
	WorstVarianceDomain  float64      `json:"worst_report_variance_domain"`
	WorstVarianceKW2     float64      `json:"worst_report_variance_kw2"`
	FrequencyVarianceAt0 *float64     `json:"frequency_variance_f0,omitempty"`
	Histogram            []ldpLevel   `json:"histogram,omitempty"`
	Sweep                []ldpSweepPt `json:"sweep"`
	EmpiricalVarianceZ   float64      `json:"empirical_variance_z"`
}

type ldpEstimate struct {
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

type ldpLevel struct {
	LevelKW  float64 `json:"level_kw"`
	Truth    float64 `json:"truth"`
	Estimate float64 `json:"estimate"`
	SD       float64 `json:"sd"`
}

type ldpSweepPt struct {
	Epsilon           float64 `json:"epsilon"`
	TheoreticalRMSEKW float64 `json:"theoretical_rmse_mean_kw"`
	EmpiricalRMSEKW   float64 `json:"empirical_rmse_mean_kw"`
}

// ldpMoments returns the mean, the unbiased variance and that variance's
// standard error (from the fourth central moment).
func ldpMoments(x []float64) (mean, variance, se float64) {
	n := float64(len(x))
	for _, v := range x {
		mean += v
	}
	mean /= n
	var m2, m4 float64
	for _, v := range x {
		d := (v - mean) * (v - mean)
		m2 += d
		m4 += d * d
	}
	variance = m2 / (n - 1)
	s2 := m2 / n
	se = math.Sqrt(math.Max(m4/n-s2*s2*(n-3)/(n-1), 0) / n)
	return mean, variance, se
}

func newLDPResult(c *ldpConfig, xs []float64, jobs []*ldpJob) (*ldpResult, error) {
	res := &ldpResult{Schema: "gridveil/ldp/v1", Seed: c.seed, Meters: c.meters, MaxKW: c.maxKW, Hour: c.hour, Trials: c.trials, Epsilon: c.epsilon, Epsilons: c.sweep}
	res.Population.Generator = ldpGenerator{BaseKW: grid.SCEResidential.At(c.hour), PCG: [2]uint64{c.seed, 0}, Rule: ldpReadingsRule}
	if c.readings {
		res.Population.ReadingsKW = xs
	}
	for _, x := range xs {
		res.Population.RawSumKW += x
		res.Population.SumKW += math.Min(x, c.maxKW)
		if x > c.maxKW {
			res.Population.Clipped++
		}
	}
	n := float64(len(xs))
	res.Population.MeanKW = res.Population.SumKW / n
	truth := res.Population.SumKW
	for mi, name := range c.mechs {
		row := jobs[mi*len(c.sweep) : (mi+1)*len(c.sweep)]
		out := ldpMechanism{Name: string(name)}
		for _, j := range row {
			m := j.mech
			theo := 0.0
			for _, x := range xs {
				theo += m.ReadingVariance(x)
			}
			msq := 0.0
			for _, s := range j.sums {
				msq += (s - truth) * (s - truth)
			}
			out.Sweep = append(out.Sweep, ldpSweepPt{Epsilon: m.Epsilon(), TheoreticalRMSEKW: math.Sqrt(theo) / n, EmpiricalRMSEKW: math.Sqrt(msq/float64(len(j.sums))) / n})
			if m.Epsilon() != c.epsilon {
				continue
			}
			out.Epsilon, out.Levels = m.Epsilon(), m.Levels()
			if name == ldp.Hybrid {
				a := m.Alpha()
				out.Alpha = &a
			}
			h := m.MaxKW() / 2
			out.WorstVarianceKW2 = m.WorstReadingVariance()
			out.WorstVarianceDomain = out.WorstVarianceKW2 / (h * h)
			mean, v, se := ldpMoments(j.sums)
			lo, hi, err := j.first.Interval(0.95)
			if err != nil {
				return nil, err
			}
			out.Sum = ldpEstimate{
				TruthKW: truth, EstimateKW: j.first.Value, ErrorKW: j.first.Value - truth, CI95KW: [2]float64{lo, hi},
				TheoreticalVar: theo, WorstCaseVar: j.first.Variance, EmpiricalVar: v, EmpiricalVarSE: se,
				EmpiricalBiasKW: mean - truth, EmpiricalBiasSEKW: math.Sqrt(v / float64(len(j.sums))),
				EmpiricalRMSEKW: math.Sqrt(msq / float64(len(j.sums))), TheoreticalRMSEKW: math.Sqrt(theo),
			}
			s := out.Sum
			out.Mean = ldpEstimate{
				TruthKW: s.TruthKW / n, EstimateKW: s.EstimateKW / n, ErrorKW: s.ErrorKW / n, CI95KW: [2]float64{lo / n, hi / n},
				TheoreticalVar: theo / (n * n), WorstCaseVar: s.WorstCaseVar / (n * n), EmpiricalVar: v / (n * n), EmpiricalVarSE: se / (n * n),
				EmpiricalBiasKW: s.EmpiricalBiasKW / n, EmpiricalBiasSEKW: s.EmpiricalBiasSEKW / n,
				EmpiricalRMSEKW: s.EmpiricalRMSEKW / n, TheoreticalRMSEKW: s.TheoreticalRMSEKW / n,
			}
			if se > 0 {
				out.EmpiricalVarianceZ = (v - theo) / se
			}
			if name.Discrete() {
				f0, err := m.FrequencyVariance(0)
				if err != nil {
					return nil, err
				}
				out.FrequencyVarianceAt0 = &f0
				w := make([]float64, m.Levels())
				for _, x := range xs {
					if err := m.AddLevelProbs(x, w); err != nil {
						return nil, err
					}
				}
				for l, e := range j.hist {
					out.Histogram = append(out.Histogram, ldpLevel{LevelKW: m.Level(l), Truth: w[l] / n, Estimate: e.Value, SD: e.SD()})
				}
			}
		}
		res.Mechanisms = append(res.Mechanisms, out)
	}
	return res, nil
}

func printLDPSummary(w io.Writer, c *ldpConfig, res *ldpResult) {
	fmt.Fprintf(w, "gridveil ldp: %d meters at %g h (true mean %.4f kW, clip %g kW, %d clipped), epsilon %g, %d trials, seed %d\n",
		c.meters, c.hour, res.Population.MeanKW, c.maxKW, res.Population.Clipped, c.epsilon, c.trials, c.seed)
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

// ---- report.html ----

var ldpPalette = []color.Color{
	color.NRGBA{0x1f, 0x77, 0xb4, 0xff}, color.NRGBA{0xff, 0x7f, 0x0e, 0xff}, color.NRGBA{0x2c, 0xa0, 0x2c, 0xff},
	color.NRGBA{0xd6, 0x27, 0x28, 0xff}, color.NRGBA{0x94, 0x67, 0xbd, 0xff},
}

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

func ldpErrorFigure(c *ldpConfig, res *ldpResult) (template.HTML, error) {
	p := newLDPPlot("Error of the mean estimate against epsilon", "epsilon per report", "RMSE of the mean [kW per meter]")
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	var ticks plot.ConstantTicks
	for _, e := range c.sweep {
		ticks = append(ticks, plot.Tick{Value: e, Label: strconv.FormatFloat(e, 'g', 4, 64)})
	}
	p.X.Tick.Marker, p.Y.Tick.Marker = ticks, plot.LogTicks{Prec: -1}
	// Explicit ranges: gonum widens an empty range by +-1, which a log
	// axis cannot show.
	p.X.Min, p.X.Max = c.sweep[0]/1.25, c.sweep[len(c.sweep)-1]*1.25
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

func ldpHistogramFigure(res *ldpResult) (template.HTML, bool, error) {
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

func writeLDPReport(w io.Writer, c *ldpConfig, res *ldpResult) error {
	page := &report.Page{
		Title:        fmt.Sprintf("gridveil ldp: %d meters, epsilon %g, seed %d", c.meters, c.epsilon, c.seed),
		SummaryTitle: "Set-up",
		Footer:       "Rendered by gridveil ldp; the figures are inline SVG. Schema of ldp.json and the formulas: docs/LDP.md.",
		Summary: [][2]string{
			{"meters", strconv.Itoa(c.meters)},
			{"readings", fmt.Sprintf("SCE household profile at %g h × Gamma(2) factor of mean 1; true mean %.4f kW", c.hour, res.Population.MeanKW)},
			{"clip range", fmt.Sprintf("[0, %g] kW (%d readings clipped)", c.maxKW, res.Population.Clipped)},
			{"epsilon per report", fmt.Sprintf("%g (figure: %s)", c.epsilon, strings.Trim(fmt.Sprint(c.sweep), "[]"))},
			{"trials", fmt.Sprintf("%d independent rounds per mechanism and epsilon", c.trials)},
			{"seed", strconv.FormatUint(c.seed, 10)},
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
	svg, err := ldpErrorFigure(c, res)
	if err != nil {
		return err
	}
	page.Figures = append(page.Figures, report.Figure{SVG: svg, Caption: fmt.Sprintf(
		"Root mean squared error of the mean estimate (kW per meter) against each report's epsilon, %d meters: lines from the exact variance given the readings, dots measured over %d rounds.", c.meters, c.trials)})
	if svg, ok, err := ldpHistogramFigure(res); err != nil {
		return err
	} else if ok {
		page.Figures = append(page.Figures, report.Figure{SVG: svg, Caption: fmt.Sprintf(
			"Histogram estimates of one round at epsilon %g (solid) against the expected histogram of the randomly rounded readings (dashed).", c.epsilon)})
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
