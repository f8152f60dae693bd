package sim

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/gridveil/gridveil/grid"
	"github.com/gridveil/gridveil/ldp"
	"github.com/gridveil/gridveil/rundir"
	"github.com/gridveil/gridveil/runfile"
	"github.com/gridveil/gridveil/scenario"
)

// Limits of gridveil ldp's flags.
const (
	ldpMaxMeters = 100_000_000
	ldpMaxTrials = 1_000_000
)

// LDP is the LDP smart-meter experiment's set-up (gridveil ldp's flags,
// docs/LDP.md). Errors name the flag that sets the field.
type LDP struct {
	Meters    int     // household meters
	Epsilon   float64 // epsilon of each report, for the detailed results
	Mechanism string  // "all" or a comma-separated list of ldp.Names
	Levels    int     // levels of grr and oue (0: their defaults)
	MaxKW     float64 // public clip bound of a reading
	Hour      float64 // clock hour of the readings, [0, 24)
	Trials    int     // independent rounds per mechanism and epsilon, >= 2
	Epsilons  string  // comma-separated epsilons of the sweep (Epsilon is added)
	Seed      uint64
	Workers   int  // goroutines (0: every core); results do not depend on it
	Readings  bool // list every true reading in ldp.json
}

// DefaultLDP is gridveil ldp's default set-up.
func DefaultLDP() LDP {
	return LDP{Meters: 10000, Epsilon: 1, Mechanism: "all", MaxKW: 10, Hour: 18, Trials: 200, Epsilons: "0.1,0.25,0.5,1,2,4,8", Seed: 1}
}

// LDPMechanismList names the mechanisms for help texts and errors.
func LDPMechanismList() string {
	var s []string
	for _, n := range ldp.Names() {
		s = append(s, string(n))
	}
	return strings.Join(s, ", ")
}

// ldpConfig is a validated set of flags.
type ldpConfig struct {
	LDP
	mechs []ldp.Name
	sweep []float64 // ascending, contains epsilon
}

func (f *LDP) validate() (*ldpConfig, error) {
	c := &ldpConfig{LDP: *f}
	if f.Meters < 1 || f.Meters > ldpMaxMeters {
		return nil, fmt.Errorf("--meters %d: give 1 to %d meters", f.Meters, ldpMaxMeters)
	}
	if f.Trials < 2 || f.Trials > ldpMaxTrials {
		return nil, fmt.Errorf("--trials %d: give 2 to %d rounds (a variance needs at least 2)", f.Trials, ldpMaxTrials)
	}
	if !(f.Epsilon >= ldp.MinEpsilon && f.Epsilon <= ldp.MaxEpsilon) {
		return nil, fmt.Errorf("--epsilon %v: give a value in [%g, %g], e.g. 1", f.Epsilon, float64(ldp.MinEpsilon), float64(ldp.MaxEpsilon))
	}
	if !(f.MaxKW > 0) || math.IsInf(f.MaxKW, 0) {
		return nil, fmt.Errorf("--max-kw %v: give a positive clip bound in kW, e.g. 10", f.MaxKW)
	}
	if !(f.Hour >= 0 && f.Hour < 24) {
		return nil, fmt.Errorf("--hour %v: give a clock hour in [0, 24)", f.Hour)
	}
	if f.Workers < 0 {
		return nil, fmt.Errorf("--workers %d: give a positive number, or 0 for all cores", f.Workers)
	}
	if strings.TrimSpace(strings.ToLower(f.Mechanism)) == "all" {
		c.mechs = ldp.Names()
	} else {
		for _, s := range strings.Split(f.Mechanism, ",") {
			n, err := ldp.ParseName(s)
			if err != nil {
				return nil, fmt.Errorf("--mechanism %q: %q is not a mechanism; give all or a list of %s", f.Mechanism, strings.TrimSpace(s), LDPMechanismList())
			}
			if !slices.Contains(c.mechs, n) {
				c.mechs = append(c.mechs, n)
			}
		}
	}
	if f.Levels != 0 && !slices.ContainsFunc(c.mechs, ldp.Name.Discrete) {
		return nil, fmt.Errorf("--levels %d: only grr and oue take levels, and --mechanism %s has neither", f.Levels, f.Mechanism)
	}
	c.sweep = []float64{f.Epsilon}
	for _, s := range strings.Split(f.Epsilons, ",") {
		if strings.TrimSpace(s) == "" {
			continue
		}
		e, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || !(e >= ldp.MinEpsilon && e <= ldp.MaxEpsilon) {
			return nil, fmt.Errorf("--epsilons %q: %q is not an epsilon in [%g, %g]", f.Epsilons, strings.TrimSpace(s), float64(ldp.MinEpsilon), float64(ldp.MaxEpsilon))
		}
		if !slices.Contains(c.sweep, e) {
			c.sweep = append(c.sweep, e)
		}
	}
	slices.Sort(c.sweep)
	for _, n := range c.mechs {
		if _, err := ldp.New(ldp.Config{Mechanism: n, Epsilon: f.Epsilon, MaxKW: f.MaxKW, Levels: c.levelsFor(n)}); err != nil {
			return nil, fmt.Errorf("--levels %d with --mechanism %s: %w", f.Levels, n, err)
		}
	}
	return c, nil
}

// levelsFor passes --levels to the mechanisms that take levels.
func (c *ldpConfig) levelsFor(n ldp.Name) int {
	if n.Discrete() {
		return c.Levels
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

// run perturbs every reading and aggregates, trials times.
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

// newLDPResult is ldp.json from the readings and every job's rounds.
func newLDPResult(c *ldpConfig, xs []float64, jobs []*ldpJob) (*runfile.LDP, error) {
	res := &runfile.LDP{Schema: "gridveil/ldp/v1", Seed: c.Seed, Meters: c.Meters, MaxKW: c.MaxKW, Hour: c.Hour, Trials: c.Trials, Epsilon: c.Epsilon, Epsilons: c.sweep}
	res.Population.Generator = runfile.LDPGenerator{BaseKW: grid.SCEResidential.At(c.Hour), PCG: [2]uint64{c.Seed, 0}, Rule: ldpReadingsRule}
	if c.Readings {
		res.Population.ReadingsKW = xs
	}
	for _, x := range xs {
		res.Population.RawSumKW += x
		res.Population.SumKW += math.Min(x, c.MaxKW)
		if x > c.MaxKW {
			res.Population.Clipped++
		}
	}
	n := float64(len(xs))
	res.Population.MeanKW = res.Population.SumKW / n
	truth := res.Population.SumKW
	for mi, name := range c.mechs {
		row := jobs[mi*len(c.sweep) : (mi+1)*len(c.sweep)]
		out := runfile.LDPMechanism{Name: string(name)}
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
			out.Sweep = append(out.Sweep, runfile.LDPSweepPoint{Epsilon: m.Epsilon(), TheoreticalRMSEKW: math.Sqrt(theo) / n, EmpiricalRMSEKW: math.Sqrt(msq/float64(len(j.sums))) / n})
			if m.Epsilon() != c.Epsilon {
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
			out.Sum = runfile.LDPEstimate{
				TruthKW: truth, EstimateKW: j.first.Value, ErrorKW: j.first.Value - truth, CI95KW: [2]float64{lo, hi},
				TheoreticalVar: theo, WorstCaseVar: j.first.Variance, EmpiricalVar: v, EmpiricalVarSE: se,
				EmpiricalBiasKW: mean - truth, EmpiricalBiasSEKW: math.Sqrt(v / float64(len(j.sums))),
				EmpiricalRMSEKW: math.Sqrt(msq / float64(len(j.sums))), TheoreticalRMSEKW: math.Sqrt(theo),
			}
			s := out.Sum
			out.Mean = runfile.LDPEstimate{
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
					out.Histogram = append(out.Histogram, runfile.LDPLevel{LevelKW: m.Level(l), Truth: w[l] / n, Estimate: e.Value, SD: e.SD()})
				}
			}
		}
		res.Mechanisms = append(res.Mechanisms, out)
	}
	return res, nil
}

// RunLDP runs the experiment: every mechanism at every epsilon, Trials
// rounds each, spread over Workers goroutines (each job draws from its own
// stream of the seed, so the document does not depend on Workers).
func RunLDP(f LDP) (*runfile.LDP, error) {
	c, err := f.validate()
	if err != nil {
		return nil, err
	}
	xs := ldpReadings(c.Meters, c.Hour, rand.New(rand.NewPCG(c.Seed, 0)))
	jobs := make([]*ldpJob, 0, len(c.mechs)*len(c.sweep))
	for _, n := range c.mechs {
		for _, e := range c.sweep {
			m, err := ldp.New(ldp.Config{Mechanism: n, Epsilon: e, MaxKW: c.MaxKW, Levels: c.levelsFor(n)})
			if err != nil {
				return nil, fmt.Errorf("--epsilons: %s at epsilon %g: %w", n, e, err)
			}
			jobs = append(jobs, &ldpJob{mech: m})
		}
	}
	workers := c.Workers
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
				errs[i] = j.run(xs, c.Trials, rand.New(rand.NewPCG(c.Seed, ldpStream(j.mech.Name(), j.mech.Epsilon()))))
			}
		}()
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return newLDPResult(c, xs, jobs)
}

// LDPFiles are the files of an ldp run: ldp.json and its report.html.
func LDPFiles(res *runfile.LDP) map[string]func(io.Writer) error {
	return map[string]func(io.Writer) error{
		"ldp.json":    func(w io.Writer) error { return scenario.WriteJSON(w, res) },
		"report.html": func(w io.Writer) error { return runfile.WriteLDPReport(w, res) },
	}
}

// WriteLDP writes an ldp run's files into dir through package rundir: all
// of them or none, with a manifest.
func WriteLDP(dir string, res *runfile.LDP, opt rundir.Options) (*rundir.Result, error) {
	return rundir.Write(dir, LDPFiles(res), opt)
}
