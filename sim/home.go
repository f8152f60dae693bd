package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"

	"github.com/gridveil/gridveil/home"
	"github.com/gridveil/gridveil/home/homereport"
	"github.com/gridveil/gridveil/rundir"
	"github.com/gridveil/gridveil/runfile"
)

// Homes is the home load-hiding run's set-up (gridveil home's flags,
// docs/HOME.md). Errors name the flag that sets the field.
type Homes struct {
	Homes       int     // home-days
	Scheduler   string  // "all" or a comma-separated list of home.SchedulerNames
	Alpha, Beta float64 // weight of money against leakage; money value of one kW² of leakage
	Seed        uint64
	SlotMinutes int  // meter slot length, divides 1440
	Sweep       bool // also solve the optimal scheduler over home.DefaultAlphas
	Levels      int  // SOC grid levels of the optimal scheduler
	Tariff      string
	Export      bool    // the meter may go negative
	TripKM      float64 // every commute's round trip (0: drawn per home)
	Commute     float64 // probability of the day's trip
	BatteryKWh  float64
	StepKW      float64 // the stepping scheduler's ladder step
	TrainHomes  int     // households the NILM attacker is trained on
	Workers     int     // goroutines over homes (0: every core); results do not depend on it
	NoSeries    bool    // leave per-home series out of home.json
	GroundTruth bool    // add appliance ground truth and detections to home.json
	// Tick, when set, is called after each finished home, from the worker
	// goroutines.
	Tick func()
}

// attackerStream is the PCG stream of the attacker's training homes; home
// i uses stream i, so the two never meet for fewer than 2^62 homes.
const attackerStream = 1 << 62

// homeOutcome is everything computed for one home-day.
type homeOutcome struct {
	hd      *home.HomeDay
	results []home.Result
	sweep   []home.Result
	raw     home.Metrics // the meter showing the bare load (no EV)
	// With --ground-truth, per result: the CO and edge detections, as
	// intervals (the prior's is the same for every meter, see runfile.HomeAttacker).
	detected []runfile.Detected
}

// DefaultHomes is gridveil home's default set-up.
func DefaultHomes() Homes {
	cfg := home.DefaultConfig()
	return Homes{Homes: 100, Scheduler: "all", Alpha: 0.5, Beta: cfg.Beta, Seed: 1, SlotMinutes: 15, Levels: home.DefaultLevels, Tariff: "tou",
		Commute: cfg.CommuteProb, BatteryKWh: home.DefaultBattery.CapacityKWh, StepKW: home.DefaultStepKW, TrainHomes: 200}
}

// homeConfig checks the set-up and makes the home model and the chosen
// schedulers' names (nil: all).
func homeConfig(f *Homes) (home.Config, []string, error) {
	cfg := home.DefaultConfig()
	if f.Homes < 1 {
		return cfg, nil, fmt.Errorf("--homes %d: give at least one home", f.Homes)
	}
	if !(f.Alpha > 0 && f.Alpha < 1) {
		return cfg, nil, fmt.Errorf("--alpha %v is outside (0, 1): choose a value strictly between 0 (privacy only) and 1 (cost only), e.g. 0.5", f.Alpha)
	}
	if !(f.Beta >= 0) || math.IsInf(f.Beta, 0) {
		return cfg, nil, fmt.Errorf("--beta %v: give the money value of one kW² of leakage, a finite number >= 0", f.Beta)
	}
	if f.TrainHomes < 1 {
		return cfg, nil, fmt.Errorf("--train-homes %d: the attacker needs at least one training home", f.TrainHomes)
	}
	tf, err := home.ParseTariff(f.Tariff)
	if err != nil {
		return cfg, nil, fmt.Errorf("--tariff: %w", err)
	}
	cfg.Tariff, cfg.Alpha, cfg.Beta = tf, f.Alpha, f.Beta
	cfg.SlotMinutes, cfg.Levels, cfg.AllowExport = f.SlotMinutes, f.Levels, f.Export
	cfg.TripKM, cfg.StepKW, cfg.CommuteProb = f.TripKM, f.StepKW, f.Commute
	cfg.Battery.CapacityKWh = f.BatteryKWh
	if err := cfg.Validate(); err != nil {
		return cfg, nil, err
	}
	var names []string
	if f.Scheduler != "all" {
		seen := map[string]bool{}
		for _, n := range strings.Split(f.Scheduler, ",") {
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

// simulateHomes spreads the homes over a pool of goroutines. Each home is
// a pure function of (seed, index), and its result lands at its index, so
// the outcome does not depend on the number of workers. The first error
// (in home order) is returned.
func simulateHomes(f *Homes, cfg *home.Config, scheds []home.Scheduler, att *home.Attacker) ([]homeOutcome, error) {
	workers := f.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, f.Homes)
	out := make([]homeOutcome, f.Homes)
	errs := make([]error, f.Homes)
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
				if f.NoSeries {
					o.hd.Day = nil // the minute series are not needed any more
				}
				out[i] = o
				if f.Tick != nil {
					f.Tick()
				}
			}
		}()
	}
feed:
	for i := range f.Homes {
		select {
		case jobs <- i:
		case <-stop:
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// simulateHome runs every scheduler on home-day i and scores it.
func simulateHome(f *Homes, cfg *home.Config, scheds []home.Scheduler, att *home.Attacker, i int) (homeOutcome, error) {
	hd, err := home.NewHomeDay(f.Seed, i, cfg)
	if err != nil {
		return homeOutcome{}, err
	}
	res, err := home.Run(hd, scheds, att)
	if err != nil {
		return homeOutcome{}, err
	}
	o := homeOutcome{hd: hd, results: res}
	o.raw = home.Evaluate(hd, &home.Schedule{Meter: hd.Problem.Load, SOC: []float64{0}}, att)
	if f.GroundTruth {
		// The attacks are run again rather than kept by Evaluate, so that
		// runs without the flag hold no per-slot verdicts in memory.
		for _, r := range res {
			co, edge, _ := att.Detections(r.Schedule.Meter)
			o.detected = append(o.detected, runfile.Detected{CO: runfile.OnIntervals(co[:]), Edge: runfile.OnIntervals(edge[:])})
		}
	}
	if f.Sweep {
		if o.sweep, err = home.Sweep(hd, home.DefaultAlphas, cfg.Levels, att); err != nil {
			return homeOutcome{}, err
		}
	}
	return o, nil
}

// homeDocument is home.json from every home-day's outcome.
func homeDocument(f *Homes, cfg *home.Config, scheds []home.Scheduler, att *home.Attacker, out []homeOutcome) *runfile.Home {
	b := cfg.Battery
	doc := &runfile.Home{
		Schema: "gridveil/home/v1", Seed: f.Seed, Homes: f.Homes, SlotMinutes: cfg.SlotMinutes,
		Slots: home.MinutesPerDay / cfg.SlotMinutes, DTHours: float64(cfg.SlotMinutes) / 60,
		Alpha: cfg.Alpha, Beta: cfg.Beta, Levels: cfg.Levels, StepKW: cfg.StepKW, AllowExport: cfg.AllowExport,
		Tariff: runfile.HomeTariff{Name: cfg.Tariff.Name, Hourly: cfg.Tariff.Hourly[:]},
		Battery: runfile.HomeBattery{CapacityKWh: b.CapacityKWh, SOCMin: b.SOCMin, SOCMax: b.SOCMax, ChargeMaxKW: b.ChargeMaxKW, DischargeMaxKW: b.DischargeMaxKW,
			EtaCharge: b.EtaCharge, EtaDischarge: b.EtaDischarge, SelfDischargePerHr: b.SelfDischargePerHr},
		Attacker: runfile.HomeAttacker{TrainingHomes: f.TrainHomes, StandbyKW: att.StandbyKW, SigmaKW: att.SigmaKW,
			StatesKW: map[string][]float64{}, MaxRunSlots: map[string]int{}},
		Totals: map[string]runfile.Totals{},
	}
	for k := range home.NumKinds {
		name := home.Kind(k).String()
		doc.Attacker.StatesKW[name] = append([]float64{}, att.States[k]...)
		doc.Attacker.MaxRunSlots[name] = att.MaxRun[k]
	}
	if f.GroundTruth {
		prior := att.Prior(doc.Slots)
		doc.Attacker.PriorOn = runfile.OnIntervals(prior[:])
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
	if f.Sweep {
		for ai, a := range home.DefaultAlphas {
			ms := make([]home.Metrics, len(out))
			for i := range out {
				ms[i] = out[i].sweep[ai].Metrics
			}
			doc.Sweep = append(doc.Sweep, runfile.SweepPoint{Alpha: a, Totals: summarize(ms)})
		}
	}
	for i := range out {
		o := &out[i]
		p := o.hd.Problem
		hd := runfile.HomeDay{ID: o.hd.ID, SOC0: p.SOC0, SOCEnd: p.SOCEnd, Results: map[string]runfile.HomeResult{}}
		for k := range home.NumKinds {
			if o.hd.Truth[k] != nil {
				hd.Appliances = append(hd.Appliances, home.Kind(k).String())
			}
		}
		if tr := p.Trip; tr != nil {
			hd.Trip = &runfile.Trip{DepartSlot: tr.Depart, ReturnSlot: tr.Return, DistanceKM: tr.DistanceKM, EnergyKWh: tr.EnergyKWh(), ReserveKWh: tr.ReserveKWh}
		}
		if !f.NoSeries {
			hd.LoadKW = p.Load
		}
		if f.GroundTruth {
			hd.Truth = runfile.OnIntervals(o.hd.Truth[:])
		}
		for ri, r := range o.results {
			m := r.Metrics
			rd := runfile.HomeResult{Cost: m.Cost, Leakage: m.Leakage, Objective: m.Objective, R2: m.R2, LaggedR2: m.LaggedR2, Lag: m.Lag,
				MI: m.MI, F1: m.F1, F1By: m.F1By, F1CO: m.F1CO, F1Edge: m.F1Edge, F1Prior: m.F1Prior, F1ByKind: m.F1ByKind, EndSOC: m.EndSOC}
			if f.GroundTruth {
				rd.Detected = &o.detected[ri]
			}
			if !f.NoSeries {
				s := r.Schedule
				rd.MeterKW, rd.SOC, rd.ChargeKW, rd.DischargeKW, rd.DriveKW = s.Meter, s.SOC, s.Charge, s.Discharge, s.Drive
			}
			hd.Results[r.Scheduler] = rd
		}
		doc.HomeDays = append(doc.HomeDays, hd)
	}
	return doc
}

// summarize is the mean and standard deviation of every metric.
func summarize(ms []home.Metrics) runfile.Totals {
	t := runfile.Totals{HomeDays: len(ms)}
	for _, f := range []struct {
		dst *runfile.Stat
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

// RunHomes simulates the home-days: the attacker trained on its own
// households, then every home-day scheduled by every scheduler and scored,
// spread over Workers goroutines. Each home is a pure function of (seed,
// index), so the document does not depend on Workers.
func RunHomes(f Homes) (*runfile.Home, error) {
	cfg, names, err := homeConfig(&f)
	if err != nil {
		return nil, err
	}
	scheds, err := cfg.Schedulers(names)
	if err != nil {
		return nil, err
	}
	att, err := home.TrainAttacker(rand.New(rand.NewPCG(f.Seed, attackerStream)), cfg.SlotMinutes, f.TrainHomes)
	if err != nil {
		return nil, err
	}
	out, err := simulateHomes(&f, &cfg, scheds, att)
	if err != nil {
		return nil, err
	}
	return homeDocument(&f, &cfg, scheds, att, out), nil
}

// HomeFiles are the files of a home run: home.json and its report.html.
func HomeFiles(doc *runfile.Home) map[string]func(io.Writer) error {
	return map[string]func(io.Writer) error{
		"home.json":   func(w io.Writer) error { return json.NewEncoder(w).Encode(doc) },
		"report.html": func(w io.Writer) error { return homereport.Write(w, runfile.HomeReport(doc)) },
	}
}

// WriteHomes writes a home run's files into dir through package rundir:
// all of them or none, with a manifest.
func WriteHomes(dir string, doc *runfile.Home, opt rundir.Options) (*rundir.Result, error) {
	return rundir.Write(dir, HomeFiles(doc), opt)
}
