package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/gridveil/gridveil/home"
	"github.com/gridveil/gridveil/home/homereport"
)

type homeFlags struct {
	homes       int
	out         string
	scheduler   string
	alpha, beta float64
	seed        uint64
	slotMinutes int
	sweep       bool
	levels      int
	tariff      string
	export      bool
	tripKM      float64
	commute     float64
	batteryKWh  float64
	stepKW      float64
	trainHomes  int
	workers     int
	noSeries    bool
	groundTruth bool
	quiet       bool
}

// attackerStream is the PCG stream of the attacker's training homes; home
// i uses stream i, so the two never meet for fewer than 2^62 homes.
const attackerStream = 1 << 62

func newHomeCmd() *cobra.Command {
	var f homeFlags
	cmd := &cobra.Command{
		Use:   "home",
		Short: "Hide household load behind the EV battery: schedulers, privacy metrics and a NILM attacker",
		Long: `home generates --homes household days (appliance-level load, a commute,
the supplier's prices), schedules each home's EV battery so that the smart
meter hides the household's consumption, and scores every schedule: money
cost, R² between meter and load, R² after the best lag, mutual information,
and the F1 of a trained NILM attacker that tries to recover appliance use.

Schedulers: optimal (exact dynamic programme on a SOC grid), be (best
effort), nill (load levelling), stepping, none (the EV is only a car).
Writes into --out:

  home.json     every home's series and metrics, and totals (docs/HOME.md)
  report.html   the comparison table, one home's day, and with --sweep the
                cost-against-privacy front over alpha

The same flags and seed give the same files, byte for byte, whatever
--workers is.`,
		Example: `  gridveil home --homes 100 --out out/home
  gridveil home --homes 200 --sweep --out out/home-sweep
  gridveil home --homes 10000 --no-series --out out/home-10k
  gridveil home --homes 20 --scheduler optimal --alpha 0.1 --tariff flat`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runHome(cmd, &f) },
	}
	fl := cmd.Flags()
	fl.IntVar(&f.homes, "homes", 100, "number of home-days")
	fl.StringVar(&f.out, "out", "out/home", "directory for home.json and report.html (created if missing)")
	fl.StringVar(&f.scheduler, "scheduler", "all", "scheduler(s), comma-separated: "+strings.Join(home.SchedulerNames, ", ")+", or all")
	fl.Float64Var(&f.alpha, "alpha", 0.5, "preference factor in (0, 1): weight of money against leakage")
	fl.Float64Var(&f.beta, "beta", home.DefaultConfig().Beta, "money value of one kW² of leakage, >= 0")
	fl.Uint64Var(&f.seed, "seed", 1, "random seed")
	fl.IntVar(&f.slotMinutes, "slot-minutes", 15, "meter slot length in minutes (divides 1440)")
	fl.BoolVar(&f.sweep, "sweep", false, "also solve the optimal scheduler over an alpha sweep and draw the cost-privacy front")
	fl.IntVar(&f.levels, "levels", home.DefaultLevels, "SOC grid levels of the optimal scheduler")
	fl.StringVar(&f.tariff, "tariff", "tou", "tou, flat, flat:PRICE, or 24 comma-separated hourly prices from 00:00")
	fl.BoolVar(&f.export, "export", false, "allow the meter to go negative (export at the same price)")
	fl.Float64Var(&f.tripKM, "trip-km", 0, "every commute's round-trip distance in km (default: drawn from 15-80 km per home)")
	fl.Float64Var(&f.commute, "commute", home.DefaultConfig().CommuteProb, "probability that a home's EV makes the day's trip (0: every EV stays at home)")
	fl.Float64Var(&f.batteryKWh, "battery-kwh", home.DefaultBattery.CapacityKWh, "EV battery capacity, kWh")
	fl.Float64Var(&f.stepKW, "step-kw", home.DefaultStepKW, "stepping scheduler's ladder step, kW")
	fl.IntVar(&f.trainHomes, "train-homes", 200, "households the NILM attacker is trained on (disjoint from the scored homes)")
	fl.IntVar(&f.workers, "workers", 0, "goroutines over homes (default: all cores); results do not depend on it")
	fl.BoolVar(&f.noSeries, "no-series", false, "leave per-home series out of home.json (metrics stay), for large runs")
	fl.BoolVar(&f.groundTruth, "ground-truth", false, "add each home's appliance ground truth and every attack's detections to home.json, enough to recompute the attacker's F1 from the file (about 2.6 kB more per home at 15-minute slots)")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "print nothing but errors")
	addForceFlag(fl)
	return cmd
}

// homeOutcome is everything computed for one home-day.
type homeOutcome struct {
	hd      *home.HomeDay
	results []home.Result
	sweep   []home.Result
	raw     home.Metrics // the meter showing the bare load (no EV)
	// With --ground-truth, per result: the CO and edge detections, as
	// intervals (the prior's is the same for every meter, see attackerDoc).
	detected []detectedDoc
}

func homeConfig(f *homeFlags) (home.Config, []string, error) {
	cfg := home.DefaultConfig()
	if f.homes < 1 {
		return cfg, nil, fmt.Errorf("--homes %d: give at least one home", f.homes)
	}
	if !(f.alpha > 0 && f.alpha < 1) {
		return cfg, nil, fmt.Errorf("--alpha %v is outside (0, 1): choose a value strictly between 0 (privacy only) and 1 (cost only), e.g. 0.5", f.alpha)
	}
	if !(f.beta >= 0) || math.IsInf(f.beta, 0) {
		return cfg, nil, fmt.Errorf("--beta %v: give the money value of one kW² of leakage, a finite number >= 0", f.beta)
	}
	if f.trainHomes < 1 {
		return cfg, nil, fmt.Errorf("--train-homes %d: the attacker needs at least one training home", f.trainHomes)
	}
	tf, err := home.ParseTariff(f.tariff)
	if err != nil {
		return cfg, nil, fmt.Errorf("--tariff: %w", err)
	}
	cfg.Tariff, cfg.Alpha, cfg.Beta = tf, f.alpha, f.beta
	cfg.SlotMinutes, cfg.Levels, cfg.AllowExport = f.slotMinutes, f.levels, f.export
	cfg.TripKM, cfg.StepKW, cfg.CommuteProb = f.tripKM, f.stepKW, f.commute
	cfg.Battery.CapacityKWh = f.batteryKWh
	if err := cfg.Validate(); err != nil {
		return cfg, nil, err
	}
	var names []string
	if f.scheduler != "all" {
		seen := map[string]bool{}
		for _, n := range strings.Split(f.scheduler, ",") {
			n = strings.TrimSpace(n)
			if _, err := home.ByName(n, 0); err != nil {
				return cfg, nil, fmt.Errorf("--scheduler: %w", err)
			}
			if !seen[n] {
				names = append(names, n)
				seen[n] = true
			}
		}
	}
	return cfg, names, nil
}

func runHome(cmd *cobra.Command, f *homeFlags) error {
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	if f.quiet {
		stdout = io.Discard
	}
	cfg, names, err := homeConfig(f)
	if err != nil {
		return err
	}
	scheds, err := cfg.Schedulers(names)
	if err != nil {
		return err
	}
	t0 := time.Now()
	att, err := home.TrainAttacker(rand.New(rand.NewPCG(f.seed, attackerStream)), cfg.SlotMinutes, f.trainHomes)
	if err != nil {
		return err
	}
	out, err := simulateHomes(f, &cfg, scheds, att, newHomeProgress(stderr, f.quiet, f.homes))
	if err != nil {
		return err
	}
	elapsed := time.Since(t0)
	doc := homeDocument(f, &cfg, scheds, att, out)
	files := map[string]func(io.Writer) error{
		"home.json": func(w io.Writer) error {
			enc := json.NewEncoder(w)
			return enc.Encode(doc)
		},
		"report.html": func(w io.Writer) error { return homereport.Write(w, homeReportData(f, &cfg, doc, out)) },
	}
	written, err := writeRun(cmd, f.out, files)
	if err != nil {
		return err
	}
	printHomeSummary(stdout, f, doc, elapsed)
	printFiles(stdout, written)
	return nil
}

// simulateHomes spreads the homes over a pool of goroutines. Each home is
// a pure function of (seed, index), and its result lands at its index, so
// the outcome does not depend on the number of workers. The first error
// (in home order) is returned.
func simulateHomes(f *homeFlags, cfg *home.Config, scheds []home.Scheduler, att *home.Attacker, prog *homeProgress) ([]homeOutcome, error) {
	workers := f.workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, f.homes)
	out := make([]homeOutcome, f.homes)
	errs := make([]error, f.homes)
	jobs := make(chan int)
	var wg sync.WaitGroup
	var failed sync.Once
	stop := make(chan struct{})
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				o, err := simulateHome(f, cfg, scheds, att, i)
				if err != nil {
					errs[i] = err
					failed.Do(func() { close(stop) })
					continue
				}
				if f.noSeries {
					o.hd.Day = nil // the minute series are not needed any more
				}
				out[i] = o
				prog.tick()
			}
		}()
	}
feed:
	for i := range f.homes {
		select {
		case jobs <- i:
		case <-stop:
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	prog.done()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func simulateHome(f *homeFlags, cfg *home.Config, scheds []home.Scheduler, att *home.Attacker, i int) (homeOutcome, error) {
	hd, err := home.NewHomeDay(f.seed, i, cfg)
	if err != nil {
		return homeOutcome{}, err
	}
	res, err := home.Run(hd, scheds, att)
	if err != nil {
		return homeOutcome{}, err
	}
	o := homeOutcome{hd: hd, results: res}
	o.raw = home.Evaluate(hd, &home.Schedule{Meter: hd.Problem.Load, SOC: []float64{0}}, att)
	if f.groundTruth {
		// The attacks are run again rather than kept by Evaluate, so that
		// runs without the flag hold no per-slot verdicts in memory.
		for _, r := range res {
			co, edge, _ := att.Detections(r.Schedule.Meter)
			o.detected = append(o.detected, detectedDoc{CO: onIntervals(co[:]), Edge: onIntervals(edge[:])})
		}
	}
	if f.sweep {
		if o.sweep, err = home.Sweep(hd, home.DefaultAlphas, cfg.Levels, att); err != nil {
			return homeOutcome{}, err
		}
	}
	return o, nil
}

// ---- home.json ----

type homeDoc struct {
	Schema      string            `json:"schema"`
	Seed        uint64            `json:"seed"`
	Homes       int               `json:"homes"`
	SlotMinutes int               `json:"slot_minutes"`
	Slots       int               `json:"slots"`
	DTHours     float64           `json:"dt_hours"`
	Alpha       float64           `json:"alpha"`
	Beta        float64           `json:"beta"`
	Levels      int               `json:"levels"`
	StepKW      float64           `json:"step_kw"`
	AllowExport bool              `json:"allow_export"`
	Tariff      tariffDoc         `json:"tariff"`
	Battery     batteryDoc        `json:"battery"`
	Attacker    attackerDoc       `json:"attacker"`
	Schedulers  []string          `json:"schedulers"`
	Totals      map[string]totals `json:"totals"`
	Reference   totals            `json:"reference_load"`
	Sweep       []sweepDoc        `json:"sweep,omitempty"`
	HomeDays    []homeDayDoc      `json:"home_days"`
}

type tariffDoc struct {
	Name   string    `json:"name"`
	Hourly []float64 `json:"hourly"`
}

type batteryDoc struct {
	CapacityKWh        float64 `json:"capacity_kwh"`
	SOCMin             float64 `json:"soc_min"`
	SOCMax             float64 `json:"soc_max"`
	ChargeMaxKW        float64 `json:"charge_max_kw"`
	DischargeMaxKW     float64 `json:"discharge_max_kw"`
	EtaCharge          float64 `json:"eta_charge"`
	EtaDischarge       float64 `json:"eta_discharge"`
	SelfDischargePerHr float64 `json:"self_discharge_per_hour"`
}

type attackerDoc struct {
	TrainingHomes int                  `json:"training_homes"`
	StandbyKW     float64              `json:"standby_kw"`
	SigmaKW       float64              `json:"sigma_kw"`
	StatesKW      map[string][]float64 `json:"states_kw"`
	MaxRunSlots   map[string]int       `json:"max_run_slots"`
	// PriorOn (--ground-truth) is the habits-only attack's detection, the
	// same for every meter of the run's length.
	PriorOn intervals `json:"prior_on,omitempty"`
}

// intervals maps an appliance kind to the slots it was on (ground truth)
// or detected on, as half-open slot ranges [start, end), ascending and
// disjoint. A kind that is never on is left out.
type intervals map[string][][2]int

// onIntervals turns per-kind, per-slot flags into intervals.
func onIntervals(rows [][]bool) intervals {
	out := intervals{}
	for k, row := range rows {
		var iv [][2]int
		for t := 0; t < len(row); t++ {
			if !row[t] {
				continue
			}
			s := t
			for t < len(row) && row[t] {
				t++
			}
			iv = append(iv, [2]int{s, t})
		}
		if len(iv) > 0 {
			out[home.Kind(k).String()] = iv
		}
	}
	return out
}

// detectedDoc is one meter's detections by the two attacks that read it.
type detectedDoc struct {
	CO   intervals `json:"co"`
	Edge intervals `json:"edge"`
}

type stat struct {
	Mean float64 `json:"mean"`
	SD   float64 `json:"sd"`
}

type totals struct {
	HomeDays int  `json:"home_days"`
	Cost     stat `json:"cost"`
	Leakage  stat `json:"leakage_kw2"`
	Obj      stat `json:"objective"`
	R2       stat `json:"r2"`
	LaggedR2 stat `json:"lagged_r2"`
	MI       stat `json:"mi_bits"`
	F1       stat `json:"f1"`
	F1CO     stat `json:"f1_co"`
	F1Edge   stat `json:"f1_edge"`
	F1Prior  stat `json:"f1_prior"`
}

type sweepDoc struct {
	Alpha  float64 `json:"alpha"`
	Totals totals  `json:"totals"`
}

type tripDoc struct {
	DepartSlot int     `json:"depart_slot"`
	ReturnSlot int     `json:"return_slot"`
	DistanceKM float64 `json:"distance_km"`
	EnergyKWh  float64 `json:"energy_kwh"`
	ReserveKWh float64 `json:"reserve_kwh"`
}

type resultDoc struct {
	Cost        float64            `json:"cost"`
	Leakage     float64            `json:"leakage_kw2"`
	Objective   float64            `json:"objective"`
	R2          float64            `json:"r2"`
	LaggedR2    float64            `json:"lagged_r2"`
	Lag         int                `json:"lag_slots"`
	MI          float64            `json:"mi_bits"`
	F1          float64            `json:"f1"`
	F1By        string             `json:"f1_by"`
	F1CO        float64            `json:"f1_co"`
	F1Edge      float64            `json:"f1_edge"`
	F1Prior     float64            `json:"f1_prior"`
	F1ByKind    map[string]float64 `json:"f1_by_kind"`
	EndSOC      float64            `json:"end_soc"`
	Detected    *detectedDoc       `json:"detected,omitempty"`
	MeterKW     []float64          `json:"meter_kw,omitempty"`
	SOC         []float64          `json:"soc,omitempty"`
	ChargeKW    []float64          `json:"charge_kw,omitempty"`
	DischargeKW []float64          `json:"discharge_kw,omitempty"`
	DriveKW     []float64          `json:"drive_kw,omitempty"`
}

type homeDayDoc struct {
	ID         int                  `json:"id"`
	Appliances []string             `json:"appliances"`
	SOC0       float64              `json:"soc0"`
	SOCEnd     float64              `json:"soc_end"`
	Trip       *tripDoc             `json:"trip"`
	Truth      intervals            `json:"truth,omitempty"`
	LoadKW     []float64            `json:"load_kw,omitempty"`
	Results    map[string]resultDoc `json:"results"`
}

func homeDocument(f *homeFlags, cfg *home.Config, scheds []home.Scheduler, att *home.Attacker, out []homeOutcome) *homeDoc {
	b := cfg.Battery
	doc := &homeDoc{
		Schema: "gridveil/home/v1", Seed: f.seed, Homes: f.homes, SlotMinutes: cfg.SlotMinutes,
		Slots: home.MinutesPerDay / cfg.SlotMinutes, DTHours: float64(cfg.SlotMinutes) / 60,
		Alpha: cfg.Alpha, Beta: cfg.Beta, Levels: cfg.Levels, StepKW: cfg.StepKW, AllowExport: cfg.AllowExport,
		Tariff:  tariffDoc{Name: cfg.Tariff.Name, Hourly: cfg.Tariff.Hourly[:]},
		Battery: batteryDoc{b.CapacityKWh, b.SOCMin, b.SOCMax, b.ChargeMaxKW, b.DischargeMaxKW, b.EtaCharge, b.EtaDischarge, b.SelfDischargePerHr},
		Attacker: attackerDoc{TrainingHomes: f.trainHomes, StandbyKW: att.StandbyKW, SigmaKW: att.SigmaKW,
			StatesKW: map[string][]float64{}, MaxRunSlots: map[string]int{}},
		Totals: map[string]totals{},
	}
	for k := range home.NumKinds {
		name := home.Kind(k).String()
		doc.Attacker.StatesKW[name] = append([]float64{}, att.States[k]...)
		doc.Attacker.MaxRunSlots[name] = att.MaxRun[k]
	}
	if f.groundTruth {
		prior := att.Prior(doc.Slots)
		doc.Attacker.PriorOn = onIntervals(prior[:])
	}
	for si, s := range scheds {
		doc.Schedulers = append(doc.Schedulers, s.Name())
		ms := make([]home.Metrics, len(out))
		for i := range out {
			ms[i] = out[i].results[si].Metrics
		}
		doc.Totals[s.Name()] = summarize(ms)
	}
	raws := make([]home.Metrics, len(out))
	for i := range out {
		raws[i] = out[i].raw
	}
	doc.Reference = summarize(raws)
	if f.sweep {
		for ai, a := range home.DefaultAlphas {
			ms := make([]home.Metrics, len(out))
			for i := range out {
				ms[i] = out[i].sweep[ai].Metrics
			}
			doc.Sweep = append(doc.Sweep, sweepDoc{Alpha: a, Totals: summarize(ms)})
		}
	}
	for i := range out {
		o := &out[i]
		p := o.hd.Problem
		hd := homeDayDoc{ID: o.hd.ID, SOC0: p.SOC0, SOCEnd: p.SOCEnd, Results: map[string]resultDoc{}}
		for k := range home.NumKinds {
			if o.hd.Truth[k] != nil {
				hd.Appliances = append(hd.Appliances, home.Kind(k).String())
			}
		}
		if tr := p.Trip; tr != nil {
			hd.Trip = &tripDoc{tr.Depart, tr.Return, tr.DistanceKM, tr.EnergyKWh(), tr.ReserveKWh}
		}
		if !f.noSeries {
			hd.LoadKW = p.Load
		}
		if f.groundTruth {
			hd.Truth = onIntervals(o.hd.Truth[:])
		}
		for ri, r := range o.results {
			m := r.Metrics
			rd := resultDoc{Cost: m.Cost, Leakage: m.Leakage, Objective: m.Objective, R2: m.R2, LaggedR2: m.LaggedR2, Lag: m.Lag,
				MI: m.MI, F1: m.F1, F1By: m.F1By, F1CO: m.F1CO, F1Edge: m.F1Edge, F1Prior: m.F1Prior, F1ByKind: m.F1ByKind, EndSOC: m.EndSOC}
			if f.groundTruth {
				rd.Detected = &o.detected[ri]
			}
			if !f.noSeries {
				s := r.Schedule
				rd.MeterKW, rd.SOC, rd.ChargeKW, rd.DischargeKW, rd.DriveKW = s.Meter, s.SOC, s.Charge, s.Discharge, s.Drive
			}
			hd.Results[r.Scheduler] = rd
		}
		doc.HomeDays = append(doc.HomeDays, hd)
	}
	return doc
}

func summarize(ms []home.Metrics) totals {
	t := totals{HomeDays: len(ms)}
	for _, f := range []struct {
		dst *stat
		get func(*home.Metrics) float64
	}{
		{&t.Cost, func(m *home.Metrics) float64 { return m.Cost }},
		{&t.Leakage, func(m *home.Metrics) float64 { return m.Leakage }},
		{&t.Obj, func(m *home.Metrics) float64 { return m.Objective }},
		{&t.R2, func(m *home.Metrics) float64 { return m.R2 }},
		{&t.LaggedR2, func(m *home.Metrics) float64 { return m.LaggedR2 }},
		{&t.MI, func(m *home.Metrics) float64 { return m.MI }},
		{&t.F1, func(m *home.Metrics) float64 { return m.F1 }},
		{&t.F1CO, func(m *home.Metrics) float64 { return m.F1CO }},
		{&t.F1Edge, func(m *home.Metrics) float64 { return m.F1Edge }},
		{&t.F1Prior, func(m *home.Metrics) float64 { return m.F1Prior }},
	} {
		var s, ss float64
		for i := range ms {
			s += f.get(&ms[i])
		}
		mean := s / float64(len(ms))
		for i := range ms {
			d := f.get(&ms[i]) - mean
			ss += d * d
		}
		f.dst.Mean = mean
		if len(ms) > 1 {
			f.dst.SD = math.Sqrt(ss / float64(len(ms)-1))
		}
	}
	return t
}

// ---- report ----

func homeReportData(f *homeFlags, cfg *home.Config, doc *homeDoc, out []homeOutcome) *homereport.Data {
	d := &homereport.Data{
		Title: fmt.Sprintf("gridveil home: %d home-days, seed %d", f.homes, f.seed),
		Summary: [][2]string{
			{"home-days", fmt.Sprint(f.homes)},
			{"slots", fmt.Sprintf("%d of %d min from 00:00", doc.Slots, cfg.SlotMinutes)},
			{"tariff", fmt.Sprintf("%s (hourly %s)", cfg.Tariff.Name, hourlySummary(cfg.Tariff.Hourly))},
			{"battery", fmt.Sprintf("%.0f kWh, SOC %.2f-%.2f, ±%.1f kW, efficiency %.2f/%.2f", cfg.Battery.CapacityKWh, cfg.Battery.SOCMin, cfg.Battery.SOCMax, cfg.Battery.ChargeMaxKW, cfg.Battery.EtaCharge, cfg.Battery.EtaDischarge)},
			{"objective", fmt.Sprintf("alpha %g, beta %g money/kW²; optimal on %d SOC levels", cfg.Alpha, cfg.Beta, cfg.Levels)},
			{"attacker", fmt.Sprintf("trained on %d other households", f.trainHomes)},
			{"export", fmt.Sprint(cfg.AllowExport)},
		},
	}
	for _, name := range doc.Schedulers {
		t := doc.Totals[name]
		d.Table = append(d.Table, row(name, t))
	}
	d.Table = append(d.Table, row("meter = load (no EV)", doc.Reference))
	if f.noSeries || len(out) == 0 {
		d.Notes = append(d.Notes, "Run with --no-series: the day figure is left out.")
	} else {
		// The first home with a trip, else home 0.
		pick := 0
		for i := range out {
			if out[i].hd.Problem.Trip != nil {
				pick = i
				break
			}
		}
		o := &out[pick]
		p := o.hd.Problem
		d.HomeID, d.Load = o.hd.ID, p.Load
		for t := range doc.Slots {
			m := t * cfg.SlotMinutes
			d.SlotLabels = append(d.SlotLabels, fmt.Sprintf("%02d:%02d", m/60, m%60))
		}
		for _, r := range o.results {
			d.Meters = append(d.Meters, homereport.Series{Name: r.Scheduler, Y: r.Schedule.Meter})
			d.SOC = append(d.SOC, homereport.Series{Name: r.Scheduler, Y: r.Schedule.SOC})
		}
		if p.Trip != nil {
			d.Away = [2]int{p.Trip.Depart, p.Trip.Return}
		}
	}
	if f.sweep {
		for _, s := range doc.Sweep {
			d.Front = append(d.Front, homereport.Point{Scheduler: "optimal", Alpha: s.Alpha, Cost: s.Totals.Cost.Mean, F1: s.Totals.F1.Mean, R2: s.Totals.R2.Mean, Leakage: s.Totals.Leakage.Mean})
		}
		for _, name := range doc.Schedulers {
			if name == "optimal" {
				continue
			}
			t := doc.Totals[name]
			d.Front = append(d.Front, homereport.Point{Scheduler: name, Alpha: math.NaN(), Cost: t.Cost.Mean, F1: t.F1.Mean, R2: t.R2.Mean, Leakage: t.Leakage.Mean})
		}
	} else {
		d.Notes = append(d.Notes, "Run with --sweep for the cost-against-privacy front over alpha.")
	}
	d.Notes = append(d.Notes,
		"Cost is what the supplier bills (Σ r(t) P_meter(t) dt); leakage is the objective's Σ (P_meter(t+1) − P_meter(t))². R² is the squared correlation of meter and load (0 is best); lagged R² the largest over shifts of up to ±4 slots; MI a binned estimate in bits. The attacker F1 is the macro F1 of the strongest of three attacks (combinatorial optimisation, edge detection, habits only) against the generator's appliance ground truth; 'habits only' is what the attacker scores without looking at the meter at all, the floor no schedule can push it below.",
		"The optimal scheduler knows the day's load in advance (it is an offline optimum); be, nill, stepping and none are online. All must leave the battery at its starting SOC by midnight and hold the trip energy plus reserve at departure. While the EV is away every scheduler's meter shows the bare load.",
		"An R² near 0 does not mean the meter is private: compare 'none', whose EV charging block lowers R² while the attacker still finds the appliances, and the attacker's F1 against its habits-only floor. docs/HOME.md explains the models and the exact commands behind the figures.")
	return d
}

func row(name string, t totals) homereport.Row {
	return homereport.Row{Scheduler: name, Cost: t.Cost.Mean, Leakage: t.Leakage.Mean, R2: t.R2.Mean, LaggedR2: t.LaggedR2.Mean,
		MI: t.MI.Mean, F1: t.F1.Mean, F1CO: t.F1CO.Mean, F1Edge: t.F1Edge.Mean, F1Prior: t.F1Prior.Mean}
}

func hourlySummary(h [24]float64) string {
	var parts []string
	start := 0
	for i := 1; i <= 24; i++ {
		if i == 24 || h[i] != h[start] {
			parts = append(parts, fmt.Sprintf("%02d-%02d h %g", start, i, h[start]))
			start = i
		}
	}
	return strings.Join(parts, ", ")
}

func printHomeSummary(w io.Writer, f *homeFlags, doc *homeDoc, elapsed time.Duration) {
	fmt.Fprintf(w, "gridveil home: %d home-days, seed %d, %d slots of %d min, tariff %s, alpha %g, beta %g, in %s\n",
		doc.Homes, doc.Seed, doc.Slots, doc.SlotMinutes, doc.Tariff.Name, doc.Alpha, doc.Beta, elapsed.Round(time.Millisecond))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scheduler\tcost\tleakage kW²\tR²\tlagged R²\tMI bit\tattacker F1\thabits-only F1\t")
	pr := func(name string, t totals) {
		fmt.Fprintf(tw, "%s\t%.3f\t%.2f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t\n", name, t.Cost.Mean, t.Leakage.Mean, t.R2.Mean, t.LaggedR2.Mean, t.MI.Mean, t.F1.Mean, t.F1Prior.Mean)
	}
	for _, n := range doc.Schedulers {
		pr(n, doc.Totals[n])
	}
	pr("meter=load", doc.Reference)
	tw.Flush()
}

// homeProgress counts finished homes on stderr when it is a terminal.
type homeProgress struct {
	mu    sync.Mutex
	w     io.Writer
	on    bool
	total int
	count int
	last  time.Time
}

func newHomeProgress(w io.Writer, quiet bool, total int) *homeProgress {
	on := false
	if fh, ok := w.(*os.File); ok && !quiet {
		on = term.IsTerminal(int(fh.Fd()))
	}
	return &homeProgress{w: w, on: on, total: total}
}

func (p *homeProgress) tick() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.count++
	if p.on && time.Since(p.last) > 200*time.Millisecond {
		p.last = time.Now()
		fmt.Fprintf(p.w, "\rhome-days %d/%d ", p.count, p.total)
	}
}

func (p *homeProgress) done() {
	if p.on {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
