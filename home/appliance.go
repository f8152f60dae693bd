package home

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// MinutesPerDay is the generator's resolution: one value per minute.
const MinutesPerDay = 1440

// Kind is an appliance kind of the generator.
type Kind int

// The appliance kinds. Fridge cycles are background activity, not
// behaviour, so they are generated but not scored (see Scored).
const (
	Fridge Kind = iota
	Kettle
	Microwave
	Cooker
	Washer
	Dishwasher
	Lighting
	TV
	WaterHeater
	NumKinds int = iota
)

var kindNames = [NumKinds]string{"fridge", "kettle", "microwave", "cooker", "washer", "dishwasher", "lighting", "tv", "water_heater"}

// String returns the kind's name as it appears in home.json.
func (k Kind) String() string {
	if k < 0 || int(k) >= NumKinds {
		return fmt.Sprintf("kind(%d)", int(k))
	}
	return kindNames[k]
}

// Scored reports whether detecting the kind counts in the attacker's F1:
// every kind whose use reveals what the household does. The fridge's
// thermostat cycles reveal nothing and would let an attacker that always
// says "on" score near 1.
func (k Kind) Scored() bool { return k != Fridge }

// Appliance is one appliance a household owns, with its drawn parameters.
type Appliance struct {
	Kind      Kind
	KW        float64 // main power draw when on
	AuxKW     float64 // second stage (washer motor, dishwasher wash pump), kW
	OnMin     float64 // fridge: compressor run, minutes
	OffMin    float64 // fridge: compressor rest, minutes
	Ownership float64 // informational: the probability the household had of owning it
}

// Household is a home's appliance stock and standby load, drawn once.
type Household struct {
	Appliances []Appliance
	StandbyKW  float64 // always-on electronics, not an appliance event
}

// ownership and power ranges of the generator (documented in docs/HOME.md).
var (
	ownProb = [NumKinds]float64{Fridge: 1, Kettle: 0.95, Microwave: 0.8, Cooker: 1, Washer: 0.9, Dishwasher: 0.6, Lighting: 1, TV: 0.95, WaterHeater: 0.5}
	kwRange = [NumKinds][2]float64{
		Fridge: {0.08, 0.15}, Kettle: {1.8, 3.0}, Microwave: {0.8, 1.3}, Cooker: {2.0, 3.0},
		Washer: {1.8, 2.2}, Dishwasher: {1.8, 2.2}, Lighting: {0.08, 0.35}, TV: {0.08, 0.25}, WaterHeater: {2.5, 3.0},
	}
)

func uniform(rng *rand.Rand, lo, hi float64) float64 { return lo + (hi-lo)*rng.Float64() }

// NewHousehold draws a household's appliances.
func NewHousehold(rng *rand.Rand) Household {
	var h Household
	h.StandbyKW = uniform(rng, 0.04, 0.12)
	for k := range NumKinds {
		if rng.Float64() >= ownProb[k] {
			continue
		}
		a := Appliance{Kind: Kind(k), KW: uniform(rng, kwRange[k][0], kwRange[k][1]), Ownership: ownProb[k]}
		switch Kind(k) {
		case Fridge:
			a.OnMin, a.OffMin = uniform(rng, 12, 20), uniform(rng, 25, 45)
		case Washer:
			a.AuxKW = uniform(rng, 0.25, 0.5)
		case Dishwasher:
			a.AuxKW = uniform(rng, 0.1, 0.2)
		}
		h.Appliances = append(h.Appliances, a)
	}
	return h
}

// Day is one day of a household at one-minute resolution, with each
// appliance's power and on/off ground truth kept.
type Day struct {
	Household Household
	MinuteKW  [][]float64 // [appliance][minute], kW; appliance order as Household.Appliances
	LoadKW    []float64   // total per minute including standby
}

// clock returns a minute of the day drawn from N(meanHour h, sdMin min),
// clamped to [lo, hi] hours.
func clock(rng *rand.Rand, meanHour, sdMin, lo, hi float64) int {
	m := meanHour*60 + rng.NormFloat64()*sdMin
	m = math.Min(math.Max(m, lo*60), hi*60)
	return int(m)
}

// add switches an appliance on at power kw for dur minutes from start,
// truncated at midnight.
func add(series []float64, start, dur int, kw float64) {
	for m := max(start, 0); m < start+dur && m < len(series); m++ {
		series[m] = math.Max(series[m], kw)
	}
}

// NewDay draws a day of use for a household. The habits (times of day,
// durations, probabilities) are documented in docs/HOME.md.
func NewDay(rng *rand.Rand, h Household) *Day {
	d := &Day{Household: h, MinuteKW: make([][]float64, len(h.Appliances)), LoadKW: make([]float64, MinutesPerDay)}
	for i, a := range h.Appliances {
		s := make([]float64, MinutesPerDay)
		d.MinuteKW[i] = s
		switch a.Kind {
		case Fridge:
			period := a.OnMin + a.OffMin
			for m := -rng.Float64() * period; m < MinutesPerDay; {
				on := a.OnMin + uniform(rng, -2, 2)
				add(s, int(m), int(on), a.KW)
				m += on + a.OffMin + uniform(rng, -3, 3)
			}
		case Kettle:
			t := clock(rng, 7, 30, 5.5, 9.5)
			add(s, t, 2+rng.IntN(3), a.KW)
			if rng.Float64() < 0.5 {
				add(s, t+10+rng.IntN(50), 2+rng.IntN(3), a.KW)
			}
			for range 1 + rng.IntN(4) {
				add(s, int(uniform(rng, 10, 22)*60), 2+rng.IntN(3), a.KW)
			}
		case Microwave:
			if rng.Float64() < 0.5 {
				add(s, clock(rng, 12.5, 30, 11, 14.5), 2+rng.IntN(5), a.KW)
			}
			if rng.Float64() < 0.4 {
				add(s, clock(rng, 18.5, 60, 16, 22), 2+rng.IntN(5), a.KW)
			}
		case Cooker:
			cook := func(start, dur int) {
				add(s, start, 10, a.KW) // heat-up at full power
				for m := start + 10; m < start+dur; m += 7 {
					add(s, m, min(4, start+dur-m), a.KW) // thermostat: 4 min on, 3 off
				}
			}
			if rng.Float64() < 0.85 {
				cook(clock(rng, 18, 40, 16, 21), 30+rng.IntN(46))
			}
			if rng.Float64() < 0.2 {
				cook(clock(rng, 12.5, 30, 11, 14), 20+rng.IntN(21))
			}
		case Washer:
			if rng.Float64() < 0.4 {
				t := int(uniform(rng, 8, 20) * 60)
				heat := 10 + rng.IntN(11)
				add(s, t, heat, a.KW)
				add(s, t+heat, 40+rng.IntN(31), a.AuxKW)
			}
		case Dishwasher:
			if rng.Float64() < 0.5 {
				t := clock(rng, 20.5, 60, 18, 23.5)
				add(s, t, 20, a.KW)
				add(s, t+20, 30, a.AuxKW)
				add(s, t+50, 10+rng.IntN(6), a.KW)
			}
		case Lighting:
			on := clock(rng, 6.75, 20, 5.5, 8)
			add(s, on, clock(rng, 7.75, 20, 6.5, 9)-on, a.KW)
			on = clock(rng, 18.5, 45, 16.5, 21)
			add(s, on, clock(rng, 23.25, 40, 21.5, 24)-on, a.KW)
		case TV:
			if rng.Float64() < 0.9 {
				add(s, clock(rng, 19.5, 60, 17, 22.5), 90+rng.IntN(151), a.KW)
			}
			if rng.Float64() < 0.3 {
				add(s, clock(rng, 7.5, 20, 6, 9), 30+rng.IntN(31), a.KW)
			}
		case WaterHeater:
			if rng.Float64() < 0.9 {
				add(s, clock(rng, 6.5, 30, 5, 8.5), 20+rng.IntN(31), a.KW)
			}
			if rng.Float64() < 0.5 {
				add(s, clock(rng, 21, 60, 18, 23.5), 20+rng.IntN(21), a.KW)
			}
		}
		for m, v := range s {
			d.LoadKW[m] += v
		}
	}
	for m := range d.LoadKW {
		d.LoadKW[m] += h.StandbyKW
	}
	return d
}

// SlotLoad averages the minute load over slots of slotMin minutes, which
// must divide a day.
func (d *Day) SlotLoad(slotMin int) []float64 { return average(d.LoadKW, slotMin) }

// SlotKW averages appliance i's power over slots of slotMin minutes.
func (d *Day) SlotKW(i, slotMin int) []float64 { return average(d.MinuteKW[i], slotMin) }

// Truth returns appliance i's ground truth per slot: on if it ran for at
// least one minute of the slot.
func (d *Day) Truth(i, slotMin int) []bool {
	n := MinutesPerDay / slotMin
	out := make([]bool, n)
	for m, v := range d.MinuteKW[i] {
		if v > 0 {
			out[m/slotMin] = true
		}
	}
	return out
}

func average(x []float64, slotMin int) []float64 {
	n := len(x) / slotMin
	out := make([]float64, n)
	for t := range out {
		var s float64
		for _, v := range x[t*slotMin : (t+1)*slotMin] {
			s += v
		}
		out[t] = s / float64(slotMin)
	}
	return out
}
