package scenario

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/grid"
)

//go:embed builtin/*.yaml
var builtinFS embed.FS

// Spec is a scenario file. Every field has a documented default (see
// docs/FORMATS.md); a zero Spec is the IEEE 13-node feeder with no vehicles.
type Spec struct {
	Name        string     `yaml:"name"`
	Description string     `yaml:"description"`
	Seed        uint64     `yaml:"seed"`
	Start       string     `yaml:"start"`        // clock time of slot 0, "HH:MM"
	SlotMinutes float64    `yaml:"slot_minutes"` // slot length
	Slots       int        `yaml:"slots"`
	VMin        float64    `yaml:"vmin_pu"`
	Feeder      FeederSpec `yaml:"feeder"`
	Profile     []float64  `yaml:"profile_kw"`         // hourly load shape; default SCE residential
	ProfileHour float64    `yaml:"profile_start_hour"` // clock hour of profile_kw[0]
	Region      RegionSpec `yaml:"region"`
	EVs         EVSpec     `yaml:"evs"`
	EVList      []EVItem   `yaml:"ev_list"`
}

// FeederSpec is the feeder every tile of the region copies: the built-in
// IEEE 13-node feeder or one given bus by bus.
type FeederSpec struct {
	Builtin string    `yaml:"builtin"` // "ieee13" (default when buses is empty)
	Name    string    `yaml:"name"`
	V0      float64   `yaml:"v0_pu"`
	SBase   float64   `yaml:"s_base_kva"`
	Buses   []BusSpec `yaml:"buses"`
}

// BusSpec is one bus of a user-defined feeder and the line from its parent.
type BusSpec struct {
	Name   string  `yaml:"name"`
	Parent string  `yaml:"parent"` // empty for the slack bus, which comes first
	R      float64 `yaml:"r_pu"`
	X      float64 `yaml:"x_pu"`
	P      float64 `yaml:"p_kw"`     // peak active load
	Q      float64 `yaml:"q_kvar"`   // peak reactive load
	Cap    float64 `yaml:"cap_kvar"` // shunt capacitor
}

// RegionSpec tiles the feeder.
type RegionSpec struct {
	Feeders   int        `yaml:"feeders"`    // K, default 1
	LoadScale [2]float64 `yaml:"load_scale"` // each feeder's loads scaled by U[lo, hi]; default [1, 1]
}

// EVSpec draws vehicles for every feeder of the region.
type EVSpec struct {
	PerBus     int        `yaml:"per_bus"`
	Buses      []string   `yaml:"buses"` // default: the feeder's EV buses
	PMax       float64    `yaml:"pmax_kw"`
	Efficiency float64    `yaml:"efficiency"`
	Energy     [2]float64 `yaml:"energy_kwh"` // U[lo, hi]
	Arrive     [2]string  `yaml:"arrive"`     // clock times, U[lo, hi]
	Depart     [2]string  `yaml:"depart"`
	V2G        V2GSpec    `yaml:"v2g"`
}

// V2GSpec gives a share of the drawn vehicles a battery model and lets
// them discharge (docs/ARCHITECTURE.md, "V2G discharging"). A vehicle with a battery
// arrives with a drawn SOC, must leave with its drawn energy on top of it
// (capped at its capacity), never goes below the owner's floor, and
// discharges up to pdis_kw. The draws use their own random stream, so the
// other vehicles are the same with and without it.
type V2GSpec struct {
	Share         float64    `yaml:"share"`                // fraction of vehicles with a battery, [0, 1]
	Capacity      [2]float64 `yaml:"capacity_kwh"`         // U[lo, hi], default [40, 80]
	SOCArrive     [2]float64 `yaml:"soc_arrive"`           // fraction of capacity, U[lo, hi], default [0.3, 0.6]
	SOCMin        float64    `yaml:"soc_min"`              // the owner's floor, fraction of capacity, default 0.2
	PDis          float64    `yaml:"pdis_kw"`              // default: pmax_kw
	DisEfficiency float64    `yaml:"discharge_efficiency"` // default: efficiency
	Degradation   float64    `yaml:"degradation_kw"`       // wear per kW-slot of throughput, default 0
}

// EVItem is one explicitly listed vehicle.
type EVItem struct {
	ID         string  `yaml:"id"`
	Feeder     int     `yaml:"feeder"` // tile index
	Bus        string  `yaml:"bus"`
	PMax       float64 `yaml:"pmax_kw"`
	Energy     float64 `yaml:"energy_kwh"`
	Efficiency float64 `yaml:"efficiency"`
	Arrive     int     `yaml:"arrive_slot"`
	Depart     int     `yaml:"depart_slot"`
	// A battery model (all optional; capacity_kwh > 0 turns it on and
	// replaces energy_kwh by soc_depart_kwh).
	Capacity      float64 `yaml:"capacity_kwh"`
	SOCArrive     float64 `yaml:"soc_arrive_kwh"`
	SOCMin        float64 `yaml:"soc_min_kwh"`
	SOCDepart     float64 `yaml:"soc_depart_kwh"`
	PDis          float64 `yaml:"pdis_kw"`
	DisEfficiency float64 `yaml:"discharge_efficiency"`
	Degradation   float64 `yaml:"degradation_kw"`
}

// ErrScenario is wrapped by every error about a scenario's content.
var ErrScenario = errors.New("invalid scenario")

// Builtins lists the embedded scenario names.
func Builtins() []string {
	ents, _ := builtinFS.ReadDir("builtin")
	var names []string
	for _, e := range ents {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(names)
	return names
}

// Load returns the built-in scenario called nameOrPath, or parses the YAML
// file at that path.
func Load(nameOrPath string) (*Spec, error) {
	data, err := builtinFS.ReadFile("builtin/" + nameOrPath + ".yaml")
	src := "built-in scenario " + nameOrPath
	if err != nil {
		data, err = os.ReadFile(nameOrPath)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && !strings.ContainsAny(nameOrPath, "/.") {
				return nil, fmt.Errorf("no scenario %q: give a file path or one of %s", nameOrPath, strings.Join(Builtins(), ", "))
			}
			return nil, fmt.Errorf("reading scenario: %w", err)
		}
		src = filepath.Base(nameOrPath)
	}
	spec, err := Parse(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	return spec, nil
}

// Parse reads a scenario from YAML. Unknown fields are errors, so that a
// misspelt key is not silently ignored.
func Parse(r io.Reader) (*Spec, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading scenario: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var s Spec
	if err := dec.Decode(&s); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: the file is empty", ErrScenario)
		}
		if keys := unknownKeys(data); len(keys) > 0 {
			return nil, fmt.Errorf("%w: %s; check the spelling against docs/FORMATS.md", ErrScenario, strings.Join(keys, "; "))
		}
		return nil, fmt.Errorf("%w: %w", ErrScenario, err)
	}
	return &s, nil
}

// Meta is what a built instance records about where it came from.
type Meta struct {
	Scenario string
	Seed     uint64
	Start    string // clock time of slot 0
	EVBuses  []string
}

// Build turns a scenario into a charging problem. seed selects the random
// draws; evs > 0 overrides the vehicle count by tiling as many feeders as it
// takes (per_bus vehicles at each EV bus of each feeder, the last one
// partly filled). The same spec, seed and evs always give the same problem.
func Build(s *Spec, seed uint64, evs int) (*charging.Problem, *Meta, error) {
	sp := *s
	if sp.Start == "" {
		sp.Start = "19:00"
	}
	if sp.SlotMinutes == 0 {
		sp.SlotMinutes = 15
	}
	if sp.Slots == 0 {
		sp.Slots = int(math.Round(12 * 60 / sp.SlotMinutes))
	}
	if sp.VMin == 0 {
		sp.VMin = 0.95
	}
	if !(sp.SlotMinutes > 0 && sp.SlotMinutes <= 24*60) {
		return nil, nil, fmt.Errorf("%w: slot_minutes = %v must be in (0, 1440]", ErrScenario, sp.SlotMinutes)
	}
	if sp.Slots < 0 || sp.Slots > 100000 {
		return nil, nil, fmt.Errorf("%w: slots = %d must be in 1..100000", ErrScenario, sp.Slots)
	}
	start, err := clock(sp.Start)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: start: %w", ErrScenario, err)
	}
	dt := sp.SlotMinutes / 60
	base, loads, evBuses, err := sp.feeder()
	if err != nil {
		return nil, nil, err
	}
	prof := grid.SCEResidential
	if len(sp.Profile) > 0 {
		prof = grid.Profile{StartHour: sp.ProfileHour, KW: sp.Profile}
	}
	if err := prof.Validate(); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrScenario, err)
	}
	shape := prof.Normalized(start, dt, sp.Slots)

	es := sp.EVs
	if len(es.Buses) > 0 {
		evBuses = es.Buses
	}
	busIdx := make([]int, len(evBuses))
	for k, name := range evBuses {
		busIdx[k] = base.BusIndex(name)
		if busIdx[k] <= 0 {
			return nil, nil, fmt.Errorf("%w: evs.buses names %q, which is not a load bus of feeder %q; use one of %s", ErrScenario, name, base.Name, loadBusNames(&base))
		}
	}
	perFeeder := es.PerBus * len(evBuses)
	k := sp.Region.Feeders
	if k == 0 {
		k = 1
	}
	total := perFeeder * k
	if evs > 0 {
		if perFeeder == 0 {
			return nil, nil, fmt.Errorf("%w: --evs needs a scenario that draws vehicles (evs.per_bus > 0)", ErrScenario)
		}
		k = (evs + perFeeder - 1) / perFeeder
		total = evs
	}
	if k < 1 || k > 10_000_000 {
		return nil, nil, fmt.Errorf("%w: region.feeders = %d must be in 1..10000000", ErrScenario, k)
	}
	scale := sp.Region.LoadScale
	if scale == [2]float64{} {
		scale = [2]float64{1, 1}
	}
	if !(scale[0] > 0 && scale[1] >= scale[0]) {
		return nil, nil, fmt.Errorf("%w: region.load_scale %v must be [lo, hi] with 0 < lo <= hi", ErrScenario, scale)
	}
	var arrive, depart [2]float64
	if total > 0 {
		if !(es.PMax > 0) {
			return nil, nil, fmt.Errorf("%w: evs.pmax_kw = %v must be positive", ErrScenario, es.PMax)
		}
		if es.Efficiency == 0 {
			es.Efficiency = 0.9
		}
		if !(es.Energy[0] >= 0 && es.Energy[1] >= es.Energy[0]) {
			return nil, nil, fmt.Errorf("%w: evs.energy_kwh %v must be [lo, hi] with 0 <= lo <= hi", ErrScenario, es.Energy)
		}
		for i, pair := range [][2]string{es.Arrive, es.Depart} {
			for j, c := range pair {
				if c == "" {
					c = [2]string{sp.Start, offsetClock(start, dt*float64(sp.Slots))}[i]
				}
				h, err := clock(c)
				if err != nil {
					return nil, nil, fmt.Errorf("%w: evs.%s: %w", ErrScenario, [2]string{"arrive", "depart"}[i], err)
				}
				off := math.Mod(h-start+24, 24) / dt
				if i == 1 && off == 0 {
					off = 24 / dt
				}
				if i == 0 {
					arrive[j] = off
				} else {
					depart[j] = off
				}
			}
		}
		if arrive[1] < arrive[0] || depart[1] < depart[0] {
			return nil, nil, fmt.Errorf("%w: evs.arrive and evs.depart are [earliest, latest] pairs of clock times after start", ErrScenario)
		}
	}

	rng := rand.New(rand.NewPCG(seed, 0x67726964766569)) // "gridvei"
	p := &charging.Problem{Slots: sp.Slots, DT: dt, VMin: sp.VMin}
	p.Feeders = make([]charging.Feeder, k)
	width := len(strconv.Itoa(k - 1))
	for fi := 0; fi < k; fi++ {
		f := base
		if k > 1 {
			f.Name = fmt.Sprintf("%s-%0*d", base.Name, width, fi)
		}
		sc := scale[0] + (scale[1]-scale[0])*rng.Float64()
		ls := make([]grid.SpotLoad, len(loads))
		for b, l := range loads {
			ls[b] = grid.SpotLoad{P: l.P * sc, Q: l.Q * sc, Cap: l.Cap}
		}
		bp, bq := grid.Baseline(ls, shape)
		p.Feeders[fi] = charging.Feeder{Feeder: f, BaseP: bp, BaseQ: bq}
	}
	p.EVs = make([]charging.EV, 0, total+len(sp.EVList))
	idWidth := len(strconv.Itoa(max(total-1, 0)))
	for n := 0; n < total; n++ {
		fi := n / perFeeder
		b := busIdx[(n%perFeeder)%len(evBuses)]
		a := int(math.Round(arrive[0] + (arrive[1]-arrive[0])*rng.Float64()))
		d := int(math.Round(depart[0] + (depart[1]-depart[0])*rng.Float64()))
		a = min(max(a, 0), sp.Slots-1)
		d = min(max(d, a+1), sp.Slots)
		e := es.Energy[0] + (es.Energy[1]-es.Energy[0])*rng.Float64()
		// Generated demands stay below 90% of what the window can deliver,
		// so that every drawn vehicle is feasible on its own.
		e = math.Min(e, 0.9*es.PMax*es.Efficiency*dt*float64(d-a))
		p.EVs = append(p.EVs, charging.EV{
			ID: fmt.Sprintf("ev%0*d", idWidth, n), Feeder: fi, Bus: b,
			PMax: es.PMax, Energy: e, Efficiency: es.Efficiency, Arrive: a, Depart: d,
		})
	}
	if err := applyV2G(&es, p.EVs[:total], seed, dt); err != nil {
		return nil, nil, err
	}
	for i, it := range sp.EVList {
		if it.Feeder < 0 || it.Feeder >= k {
			return nil, nil, fmt.Errorf("%w: ev_list[%d] (%q): feeder %d does not exist; the region has feeders 0..%d", ErrScenario, i, it.ID, it.Feeder, k-1)
		}
		b := base.BusIndex(it.Bus)
		if b <= 0 {
			return nil, nil, fmt.Errorf("%w: ev_list[%d] (%q): unknown bus %q; use one of %s", ErrScenario, i, it.ID, it.Bus, loadBusNames(&base))
		}
		eff := it.Efficiency
		if eff == 0 {
			eff = 0.9
		}
		ev := charging.EV{ID: it.ID, Feeder: it.Feeder, Bus: b, PMax: it.PMax, Energy: it.Energy, Efficiency: eff, Arrive: it.Arrive, Depart: it.Depart,
			Capacity: it.Capacity, SOCArrive: it.SOCArrive, SOCMin: it.SOCMin, SOCDepart: it.SOCDepart, PDis: it.PDis, DisEfficiency: it.DisEfficiency, Degradation: it.Degradation}
		if ev.Capacity > 0 && ev.DisEfficiency == 0 {
			ev.DisEfficiency = eff
		}
		p.EVs = append(p.EVs, ev)
	}
	if err := p.Validate(); err != nil {
		return nil, nil, err
	}
	name := sp.Name
	if name == "" {
		name = "unnamed"
	}
	return p, &Meta{Scenario: name, Seed: seed, Start: sp.Start, EVBuses: evBuses}, nil
}

func (sp *Spec) feeder() (grid.Feeder, []grid.SpotLoad, []string, error) {
	fs := sp.Feeder
	if len(fs.Buses) == 0 {
		if fs.Builtin != "" && fs.Builtin != "ieee13" {
			return grid.Feeder{}, nil, nil, fmt.Errorf("%w: feeder.builtin %q is unknown; use ieee13 or list buses", ErrScenario, fs.Builtin)
		}
		f, loads := grid.IEEE13()
		if fs.V0 != 0 {
			f.V0 = fs.V0
		}
		if fs.Name != "" {
			f.Name = fs.Name
		}
		return f, loads, grid.IEEE13EVBuses, f.Validate()
	}
	f := grid.Feeder{Name: fs.Name, V0: fs.V0, SBase: fs.SBase}
	if f.Name == "" {
		f.Name = "feeder"
	}
	if f.V0 == 0 {
		f.V0 = 1
	}
	if f.SBase == 0 {
		f.SBase = 1000
	}
	loads := make([]grid.SpotLoad, len(fs.Buses))
	index := map[string]int{}
	var evBuses []string
	for i, b := range fs.Buses {
		parent := -1
		if i > 0 {
			pi, ok := index[b.Parent]
			if !ok {
				return grid.Feeder{}, nil, nil, fmt.Errorf("%w: feeder bus %q: parent %q is not listed before it; list the slack bus first and every bus after its parent", ErrScenario, b.Name, b.Parent)
			}
			parent = pi
			evBuses = append(evBuses, b.Name)
		} else if b.Parent != "" {
			return grid.Feeder{}, nil, nil, fmt.Errorf("%w: feeder bus %q comes first, so it is the slack bus and must have no parent (it names %q)", ErrScenario, b.Name, b.Parent)
		}
		index[b.Name] = i
		f.Buses = append(f.Buses, grid.Bus{Name: b.Name, Parent: parent, R: b.R, X: b.X})
		loads[i] = grid.SpotLoad{P: b.P, Q: b.Q, Cap: b.Cap}
	}
	if err := f.Validate(); err != nil {
		return grid.Feeder{}, nil, nil, fmt.Errorf("%w: %w", ErrScenario, err)
	}
	return f, loads, evBuses, nil
}

func loadBusNames(f *grid.Feeder) string {
	var names []string
	for _, b := range f.Buses[1:] {
		names = append(names, b.Name)
	}
	return strings.Join(names, ", ")
}

// clock parses "HH:MM" into hours.
func clock(s string) (float64, error) {
	hh, mm, ok := strings.Cut(s, ":")
	h, err1 := strconv.Atoi(hh)
	m, err2 := strconv.Atoi(mm)
	if !ok || err1 != nil || err2 != nil || h < 0 || h > 23 || m < 0 || m > 59 {
		return 0, fmt.Errorf("clock time %q is not HH:MM (00:00 to 23:59)", s)
	}
	return float64(h) + float64(m)/60, nil
}

func offsetClock(start, hours float64) string {
	m := int(math.Round(math.Mod(start+hours, 24) * 60))
	return fmt.Sprintf("%02d:%02d", m/60%24, m%60)
}

// SlotClock returns the clock label of slot t.
func SlotClock(start string, dt float64, t int) string {
	h, err := clock(start)
	if err != nil {
		return strconv.Itoa(t)
	}
	return offsetClock(h, dt*float64(t))
}

// applyV2G gives the share es.V2G.Share of the drawn vehicles a battery:
// every vehicle whose own draw from a separate stream falls below the
// share, so raising the share only adds vehicles. A vehicle keeps its
// drawn energy as what it must gain by departure.
func applyV2G(es *EVSpec, evs []charging.EV, seed uint64, dt float64) error {
	v := es.V2G
	if v == (V2GSpec{}) {
		return nil
	}
	if !(v.Share >= 0 && v.Share <= 1) {
		return fmt.Errorf("%w: evs.v2g.share %v must be a fraction in [0, 1]", ErrScenario, v.Share)
	}
	if v.Capacity == [2]float64{} {
		v.Capacity = [2]float64{40, 80}
	}
	if v.SOCArrive == [2]float64{} {
		v.SOCArrive = [2]float64{0.3, 0.6}
	}
	if v.SOCMin == 0 {
		v.SOCMin = 0.2
	}
	if v.PDis == 0 {
		v.PDis = es.PMax
	}
	if v.DisEfficiency == 0 {
		v.DisEfficiency = es.Efficiency
	}
	if !(v.Capacity[0] > 0 && v.Capacity[1] >= v.Capacity[0]) {
		return fmt.Errorf("%w: evs.v2g.capacity_kwh %v must be [lo, hi] with 0 < lo <= hi", ErrScenario, v.Capacity)
	}
	if !(v.SOCArrive[0] >= 0 && v.SOCArrive[1] >= v.SOCArrive[0] && v.SOCArrive[1] <= 1) {
		return fmt.Errorf("%w: evs.v2g.soc_arrive %v must be [lo, hi] fractions of capacity with 0 <= lo <= hi <= 1", ErrScenario, v.SOCArrive)
	}
	if !(v.SOCMin >= 0 && v.SOCMin <= v.SOCArrive[0]) {
		return fmt.Errorf("%w: evs.v2g.soc_min %v must be a fraction in [0, soc_arrive lo = %v]: a vehicle may not arrive below its own floor", ErrScenario, v.SOCMin, v.SOCArrive[0])
	}
	if !(v.PDis >= 0) || !(v.DisEfficiency > 0 && v.DisEfficiency <= 1) || !(v.Degradation >= 0) {
		return fmt.Errorf("%w: evs.v2g needs pdis_kw >= 0, discharge_efficiency in (0, 1] and degradation_kw >= 0 (got %v, %v, %v)", ErrScenario, v.PDis, v.DisEfficiency, v.Degradation)
	}
	rng := rand.New(rand.NewPCG(seed, 0x76326776656869)) // "v2gvehi"
	for i := range evs {
		ev := &evs[i]
		pick, c, s0 := rng.Float64(), rng.Float64(), rng.Float64()
		if pick >= v.Share {
			continue
		}
		ev.Capacity = v.Capacity[0] + (v.Capacity[1]-v.Capacity[0])*c
		ev.SOCArrive = ev.Capacity * (v.SOCArrive[0] + (v.SOCArrive[1]-v.SOCArrive[0])*s0)
		ev.SOCMin = ev.Capacity * v.SOCMin
		ev.SOCDepart = math.Min(ev.Capacity, ev.SOCArrive+ev.Energy)
		ev.Energy = 0
		ev.PDis, ev.DisEfficiency, ev.Degradation = v.PDis, v.DisEfficiency, v.Degradation
	}
	return nil
}

// SetV2GShare overrides the share of drawn vehicles with a battery that
// may discharge (gridveil sim --v2g-share); the scenario's other v2g
// settings, or their defaults, apply.
func (s *Spec) SetV2GShare(f float64) { s.EVs.V2G.Share = f }
