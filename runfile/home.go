package runfile

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gridveil/gridveil/home"
	"github.com/gridveil/gridveil/home/homereport"
)

// Home is home.json (schema gridveil/home/v1, docs/HOME.md): the run's
// set-up, totals per scheduler and every home-day.
type Home struct {
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
	Tariff      HomeTariff        `json:"tariff"`
	Battery     HomeBattery       `json:"battery"`
	Attacker    HomeAttacker      `json:"attacker"`
	Schedulers  []string          `json:"schedulers"`
	Totals      map[string]Totals `json:"totals"`
	Reference   Totals            `json:"reference_load"`
	Sweep       []SweepPoint      `json:"sweep,omitempty"`
	HomeDays    []HomeDay         `json:"home_days"`
}

// HomeTariff is the supplier's hourly price from 00:00.
type HomeTariff struct {
	Name   string    `json:"name"`
	Hourly []float64 `json:"hourly"`
}

// HomeBattery is the EV battery model every home uses.
type HomeBattery struct {
	CapacityKWh        float64 `json:"capacity_kwh"`
	SOCMin             float64 `json:"soc_min"`
	SOCMax             float64 `json:"soc_max"`
	ChargeMaxKW        float64 `json:"charge_max_kw"`
	DischargeMaxKW     float64 `json:"discharge_max_kw"`
	EtaCharge          float64 `json:"eta_charge"`
	EtaDischarge       float64 `json:"eta_discharge"`
	SelfDischargePerHr float64 `json:"self_discharge_per_hour"`
}

// HomeAttacker is the trained NILM attacker's model.
type HomeAttacker struct {
	TrainingHomes int                  `json:"training_homes"`
	StandbyKW     float64              `json:"standby_kw"`
	SigmaKW       float64              `json:"sigma_kw"`
	StatesKW      map[string][]float64 `json:"states_kw"`
	MaxRunSlots   map[string]int       `json:"max_run_slots"`
	// PriorOn (--ground-truth) is the habits-only attack's detection, the
	// same for every meter of the run's length.
	PriorOn Intervals `json:"prior_on,omitempty"`
}

// Intervals maps an appliance kind to the slots it was on (ground truth)
// or detected on, as half-open slot ranges [start, end), ascending and
// disjoint. A kind that is never on is left out.
type Intervals map[string][][2]int

// OnIntervals turns per-kind, per-slot flags into Intervals.
func OnIntervals(rows [][]bool) Intervals {
	out := Intervals{}
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

// Detected is one meter's detections by the two attacks that read it.
type Detected struct {
	CO   Intervals `json:"co"`
	Edge Intervals `json:"edge"`
}

// Stat is a mean and sample standard deviation over home-days.
type Stat struct {
	Mean float64 `json:"mean"`
	SD   float64 `json:"sd"`
}

// Totals are a scheduler's metrics over all home-days.
type Totals struct {
	HomeDays int  `json:"home_days"`
	Cost     Stat `json:"cost"`
	Leakage  Stat `json:"leakage_kw2"`
	Obj      Stat `json:"objective"`
	R2       Stat `json:"r2"`
	LaggedR2 Stat `json:"lagged_r2"`
	MI       Stat `json:"mi_bits"`
	F1       Stat `json:"f1"`
	F1CO     Stat `json:"f1_co"`
	F1Edge   Stat `json:"f1_edge"`
	F1Prior  Stat `json:"f1_prior"`
}

// SweepPoint is the optimal scheduler's totals at one alpha (--sweep).
type SweepPoint struct {
	Alpha  float64 `json:"alpha"`
	Totals Totals  `json:"totals"`
}

// Trip is a home-day's commute.
type Trip struct {
	DepartSlot int     `json:"depart_slot"`
	ReturnSlot int     `json:"return_slot"`
	DistanceKM float64 `json:"distance_km"`
	EnergyKWh  float64 `json:"energy_kwh"`
	ReserveKWh float64 `json:"reserve_kwh"`
}

// HomeResult is one scheduler's metrics on one home-day, with its series
// unless --no-series and its detections with --ground-truth.
type HomeResult struct {
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
	Detected    *Detected          `json:"detected,omitempty"`
	MeterKW     []float64          `json:"meter_kw,omitempty"`
	SOC         []float64          `json:"soc,omitempty"`
	ChargeKW    []float64          `json:"charge_kw,omitempty"`
	DischargeKW []float64          `json:"discharge_kw,omitempty"`
	DriveKW     []float64          `json:"drive_kw,omitempty"`
}

// HomeDay is one home-day: its appliances, trip, load and every
// scheduler's result.
type HomeDay struct {
	ID         int                   `json:"id"`
	Appliances []string              `json:"appliances"`
	SOC0       float64               `json:"soc0"`
	SOCEnd     float64               `json:"soc_end"`
	Trip       *Trip                 `json:"trip"`
	Truth      Intervals             `json:"truth,omitempty"`
	LoadKW     []float64             `json:"load_kw,omitempty"`
	Results    map[string]HomeResult `json:"results"`
}

// HomeReport is report.html's content for a home.json document: the
// comparison table, one home's day (the first with a trip; not with
// --no-series, whose document holds no series) and, with --sweep, the
// cost-against-privacy front. It reads nothing but the document, so a
// home.json alone renders its report.
func HomeReport(doc *Home) *homereport.Data {
	b := doc.Battery
	d := &homereport.Data{
		Title: fmt.Sprintf("gridveil home: %d home-days, seed %d", doc.Homes, doc.Seed),
		Summary: [][2]string{
			{"home-days", fmt.Sprint(doc.Homes)},
			{"slots", fmt.Sprintf("%d of %d min from 00:00", doc.Slots, doc.SlotMinutes)},
			{"tariff", fmt.Sprintf("%s (hourly %s)", doc.Tariff.Name, hourlySummary(doc.Tariff.Hourly))},
			{"battery", fmt.Sprintf("%.0f kWh, SOC %.2f-%.2f, ±%.1f kW, efficiency %.2f/%.2f", b.CapacityKWh, b.SOCMin, b.SOCMax, b.ChargeMaxKW, b.EtaCharge, b.EtaDischarge)},
			{"objective", fmt.Sprintf("alpha %g, beta %g money/kW²; optimal on %d SOC levels", doc.Alpha, doc.Beta, doc.Levels)},
			{"attacker", fmt.Sprintf("trained on %d other households", doc.Attacker.TrainingHomes)},
			{"export", fmt.Sprint(doc.AllowExport)},
		},
	}
	for _, name := range doc.Schedulers {
		t := doc.Totals[name]
		d.Table = append(d.Table, row(name, t))
	}
	d.Table = append(d.Table, row("meter = load (no EV)", doc.Reference))
	if len(doc.HomeDays) == 0 || doc.HomeDays[0].LoadKW == nil {
		d.Notes = append(d.Notes, "Run with --no-series: the day figure is left out.")
	} else {
		// The first home with a trip, else home 0.
		pick := 0
		for i := range doc.HomeDays {
			if doc.HomeDays[i].Trip != nil {
				pick = i
				break
			}
		}
		hd := &doc.HomeDays[pick]
		d.HomeID, d.Load = hd.ID, hd.LoadKW
		for t := range doc.Slots {
			m := t * doc.SlotMinutes
			d.SlotLabels = append(d.SlotLabels, fmt.Sprintf("%02d:%02d", m/60, m%60))
		}
		for _, name := range doc.Schedulers {
			r := hd.Results[name]
			d.Meters = append(d.Meters, homereport.Series{Name: name, Y: r.MeterKW})
			d.SOC = append(d.SOC, homereport.Series{Name: name, Y: r.SOC})
		}
		if hd.Trip != nil {
			d.Away = [2]int{hd.Trip.DepartSlot, hd.Trip.ReturnSlot}
		}
	}
	if len(doc.Sweep) > 0 {
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

// row is a scheduler's line of the report's table.
func row(name string, t Totals) homereport.Row {
	return homereport.Row{Scheduler: name, Cost: t.Cost.Mean, Leakage: t.Leakage.Mean, R2: t.R2.Mean, LaggedR2: t.LaggedR2.Mean,
		MI: t.MI.Mean, F1: t.F1.Mean, F1CO: t.F1CO.Mean, F1Edge: t.F1Edge.Mean, F1Prior: t.F1Prior.Mean}
}

// hourlySummary writes an hourly tariff as runs of equal prices.
func hourlySummary(h []float64) string {
	var parts []string
	start := 0
	for i := 1; i <= len(h); i++ {
		if i == len(h) || h[i] != h[start] {
			parts = append(parts, fmt.Sprintf("%02d-%02d h %g", start, i, h[start]))
			start = i
		}
	}
	return strings.Join(parts, ", ")
}

// PrintHomeSummary prints the run's totals per scheduler; elapsed is the
// run's wall time.
func PrintHomeSummary(w io.Writer, doc *Home, elapsed time.Duration) {
	fmt.Fprintf(w, "gridveil home: %d home-days, seed %d, %d slots of %d min, tariff %s, alpha %g, beta %g, in %s\n",
		doc.Homes, doc.Seed, doc.Slots, doc.SlotMinutes, doc.Tariff.Name, doc.Alpha, doc.Beta, elapsed.Round(time.Millisecond))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scheduler\tcost\tleakage kW²\tR²\tlagged R²\tMI bit\tattacker F1\thabits-only F1\t")
	pr := func(name string, t Totals) {
		fmt.Fprintf(tw, "%s\t%.3f\t%.2f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t\n", name, t.Cost.Mean, t.Leakage.Mean, t.R2.Mean, t.LaggedR2.Mean, t.MI.Mean, t.F1.Mean, t.F1Prior.Mean)
	}
	for _, n := range doc.Schedulers {
		pr(n, doc.Totals[n])
	}
	pr("meter=load", doc.Reference)
	tw.Flush()
}
