package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gridveil/gridveil/home"
)

// runHomeCmd runs "gridveil home" with args through the root command.
func runHomeCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return run(t, append([]string{"home"}, args...)...)
}

// homeJSON is the part of home.json the tests read back.
type homeJSON struct {
	Schema     string   `json:"schema"`
	Homes      int      `json:"homes"`
	Slots      int      `json:"slots"`
	DTHours    float64  `json:"dt_hours"`
	Alpha      float64  `json:"alpha"`
	Beta       float64  `json:"beta"`
	Schedulers []string `json:"schedulers"`
	Tariff     struct {
		Hourly []float64 `json:"hourly"`
	} `json:"tariff"`
	Battery struct {
		CapacityKWh        float64 `json:"capacity_kwh"`
		SOCMin             float64 `json:"soc_min"`
		SOCMax             float64 `json:"soc_max"`
		ChargeMaxKW        float64 `json:"charge_max_kw"`
		DischargeMaxKW     float64 `json:"discharge_max_kw"`
		EtaCharge          float64 `json:"eta_charge"`
		EtaDischarge       float64 `json:"eta_discharge"`
		SelfDischargePerHr float64 `json:"self_discharge_per_hour"`
	} `json:"battery"`
	Totals map[string]struct {
		HomeDays int                    `json:"home_days"`
		Cost     struct{ Mean float64 } `json:"cost"`
		F1       struct{ Mean float64 } `json:"f1"`
	} `json:"totals"`
	Sweep []struct {
		Alpha  float64 `json:"alpha"`
		Totals struct {
			Cost    struct{ Mean float64 } `json:"cost"`
			Leakage struct{ Mean float64 } `json:"leakage_kw2"`
		} `json:"totals"`
	} `json:"sweep"`
	HomeDays []struct {
		ID     int     `json:"id"`
		SOC0   float64 `json:"soc0"`
		SOCEnd float64 `json:"soc_end"`
		Trip   *struct {
			DepartSlot int     `json:"depart_slot"`
			ReturnSlot int     `json:"return_slot"`
			DistanceKM float64 `json:"distance_km"`
			ReserveKWh float64 `json:"reserve_kwh"`
		} `json:"trip"`
		LoadKW  []float64 `json:"load_kw"`
		Results map[string]struct {
			Cost        float64   `json:"cost"`
			Leakage     float64   `json:"leakage_kw2"`
			R2          float64   `json:"r2"`
			F1          float64   `json:"f1"`
			MeterKW     []float64 `json:"meter_kw"`
			SOC         []float64 `json:"soc"`
			ChargeKW    []float64 `json:"charge_kw"`
			DischargeKW []float64 `json:"discharge_kw"`
			DriveKW     []float64 `json:"drive_kw"`
		} `json:"results"`
	} `json:"home_days"`
}

// TestHomeFiles runs the documented command, then checks: both files
// written, byte-identical for 1 and 3 workers; every series in home.json
// meets every battery constraint (rebuilt from the JSON alone and checked
// by home.Problem.Check); the report's table has every scheduler with all
// five figures; the sweep is monotone.
func TestHomeFiles(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	out, err := runHomeCmd(t, "--homes", "12", "--sweep", "--out", a, "--workers", "1")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"12 home-days", "optimal", "nill", "stepping", "attacker F1", "report.html"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if _, err := runHomeCmd(t, "--homes", "12", "--sweep", "--out", b, "--workers", "3", "-q"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"home.json", "report.html"} {
		da, _ := os.ReadFile(filepath.Join(a, f))
		db, _ := os.ReadFile(filepath.Join(b, f))
		if len(da) == 0 || !bytes.Equal(da, db) {
			t.Errorf("%s differs between 1 and 3 workers", f)
		}
		if fi, err := os.Stat(filepath.Join(a, f)); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: %v", f, err)
		}
	}
	data, _ := os.ReadFile(filepath.Join(a, "home.json"))
	var doc homeJSON
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Schema != "gridveil/home/v1" || doc.Homes != 12 || len(doc.HomeDays) != 12 || len(doc.Schedulers) != 5 {
		t.Fatalf("home.json: schema %q, %d homes, %d home-days, schedulers %v", doc.Schema, doc.Homes, len(doc.HomeDays), doc.Schedulers)
	}
	prices := make([]float64, doc.Slots)
	for i := range prices {
		prices[i] = doc.Tariff.Hourly[int(float64(i)*doc.DTHours)]
	}
	bt := doc.Battery
	checked := 0
	for _, hd := range doc.HomeDays {
		p := &home.Problem{
			DT: doc.DTHours, Load: hd.LoadKW, Price: prices, SOC0: hd.SOC0, SOCEnd: hd.SOCEnd, Alpha: doc.Alpha, Beta: doc.Beta,
			Battery: home.Battery{CapacityKWh: bt.CapacityKWh, SOCMin: bt.SOCMin, SOCMax: bt.SOCMax, ChargeMaxKW: bt.ChargeMaxKW,
				DischargeMaxKW: bt.DischargeMaxKW, EtaCharge: bt.EtaCharge, EtaDischarge: bt.EtaDischarge, SelfDischargePerHr: bt.SelfDischargePerHr},
		}
		if tr := hd.Trip; tr != nil {
			p.Trip = &home.Trip{Depart: tr.DepartSlot, Return: tr.ReturnSlot, DistanceKM: tr.DistanceKM, KMPerKWh: home.DefaultConfig().KMPerKWh, ReserveKWh: tr.ReserveKWh}
		}
		for _, name := range doc.Schedulers {
			r, ok := hd.Results[name]
			if !ok {
				t.Fatalf("home %d lacks %s", hd.ID, name)
			}
			s := &home.Schedule{Scheduler: name, Charge: r.ChargeKW, Discharge: r.DischargeKW, Drive: r.DriveKW, Meter: r.MeterKW, SOC: r.SOC}
			if err := p.Check(s); err != nil {
				t.Fatalf("home %d: %v", hd.ID, err)
			}
			cost, leak, _ := p.Objective(s)
			if math.Abs(cost-r.Cost) > 1e-9 || math.Abs(leak-r.Leakage) > 1e-9 {
				t.Fatalf("home %d %s: cost/leakage %v/%v in the file, %v/%v from its series", hd.ID, name, r.Cost, r.Leakage, cost, leak)
			}
			checked++
		}
	}
	if checked != 60 {
		t.Fatalf("checked %d schedules", checked)
	}
	for i := 1; i < len(doc.Sweep); i++ {
		p, q := doc.Sweep[i-1].Totals, doc.Sweep[i].Totals
		if q.Cost.Mean > p.Cost.Mean+1e-9 || q.Leakage.Mean < p.Leakage.Mean-1e-9 {
			t.Errorf("sweep not monotone at alpha %v", doc.Sweep[i].Alpha)
		}
	}
	html, _ := os.ReadFile(filepath.Join(a, "report.html"))
	page := string(html)
	for _, want := range []string{"<svg", "attacker F1", "lagged R²", "MI [bit]", "Cost against privacy", "meter = load (no EV)"} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, name := range doc.Schedulers {
		if !strings.Contains(page, "<tr><td>"+name+"</td>") {
			t.Errorf("report table lacks a row for %s", name)
		}
	}
	for _, bad := range []string{"<script", "src=", "href=", "@import", "url("} {
		if strings.Contains(page, bad) {
			t.Errorf("report is not self-contained: it contains %q", bad)
		}
	}
}

// TestHomeBadInput: a clear error naming the value and the fix, and no
// file written.
func TestHomeBadInput(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--trip-km", "900"}, "900.0 km trip needs 138.46 kWh"},
		{[]string{"--alpha", "1"}, "--alpha 1 is outside (0, 1)"},
		{[]string{"--alpha", "0"}, "--alpha 0 is outside (0, 1)"},
		{[]string{"--tariff", "flat:-0.3"}, "price -0.3 for hour 00:00 is negative"},
		{[]string{"--tariff", "0.1,0.2"}, "24 comma-separated hourly prices"},
		{[]string{"--beta", "-2"}, "--beta -2"},
		{[]string{"--slot-minutes", "7"}, "7 min must divide a day"},
		{[]string{"--scheduler", "optimal,magic"}, `unknown scheduler "magic"`},
		{[]string{"--homes", "0"}, "--homes 0"},
		{[]string{"--levels", "1"}, "1 SOC levels"},
	}
	for i, c := range cases {
		dir := filepath.Join(t.TempDir(), "out", string(rune('a'+i)))
		args := append([]string{"--homes", "2"}, c.args...) // a later flag wins
		_, err := runHomeCmd(t, append(args, "--out", dir)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.args, err, c.want)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("%v: bad input left files in %s", c.args, dir)
		}
	}
	_, err := runHomeCmd(t, "--trip-km", "900", "--homes", "1", "--out", t.TempDir())
	if !errors.Is(err, home.ErrInfeasible) || !strings.Contains(err.Error(), "shorten the trip to at most") {
		t.Errorf("trip error does not say what to do: %v", err)
	}
}

// TestHomeOneScheduler: --scheduler restricts the run and --no-series
// drops the series but keeps the metrics.
func TestHomeOneScheduler(t *testing.T) {
	dir := t.TempDir()
	if _, err := runHomeCmd(t, "--homes", "3", "--scheduler", "nill", "--no-series", "--tariff", "flat", "--out", dir, "-q"); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "home.json"))
	var doc homeJSON
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Schedulers) != 1 || doc.Schedulers[0] != "nill" || len(doc.HomeDays) != 3 {
		t.Fatalf("schedulers %v, %d homes", doc.Schedulers, len(doc.HomeDays))
	}
	r := doc.HomeDays[0].Results["nill"]
	if r.MeterKW != nil || doc.HomeDays[0].LoadKW != nil || r.Cost == 0 {
		t.Fatalf("--no-series: meter %v, load %v, cost %v", r.MeterKW != nil, doc.HomeDays[0].LoadKW != nil, r.Cost)
	}
}
