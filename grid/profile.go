package grid

import (
	"fmt"
	"math"
)

// SCEResidential is SCE's hourly residential household load in kW, starting
// at 12:00 and ending at 11:00 the next day (docs/ARCHITECTURE.md C1). Its peak is at
// 18:00.
var SCEResidential = Profile{
	StartHour: 12,
	KW: []float64{1.651, 1.887, 2.090, 2.278, 2.392, 2.457, 2.462, 2.377, 2.275, 2.179, 2.001, 1.745,
		1.505, 1.303, 1.151, 1.036, 0.955, 0.888, 0.867, 0.963, 1.127, 1.348, 1.599, 1.829},
}

// Profile is a daily load shape sampled hourly.
type Profile struct {
	StartHour float64   // clock hour of KW[0]
	KW        []float64 // one value per hour, cyclic over 24 h
}

// At returns the shape at clock time hour (any real; taken modulo 24),
// interpolating linearly between hourly samples.
func (p Profile) At(hour float64) float64 {
	n := float64(len(p.KW))
	h := math.Mod(hour-p.StartHour, n)
	if h < 0 {
		h += n
	}
	i := int(h)
	frac := h - float64(i)
	a := p.KW[i%len(p.KW)]
	b := p.KW[(i+1)%len(p.KW)]
	return a + frac*(b-a)
}

// Peak returns the largest hourly sample.
func (p Profile) Peak() float64 {
	m := math.Inf(-1)
	for _, v := range p.KW {
		m = math.Max(m, v)
	}
	return m
}

// Normalized returns the shape divided by its peak for slots slots of dt
// hours from clock hour start, each sampled at the slot's midpoint: the
// factor by which a bus's spot load is scaled in each slot.
func (p Profile) Normalized(start, dt float64, slots int) []float64 {
	peak := p.Peak()
	out := make([]float64, slots)
	for t := range out {
		out[t] = p.At(start+(float64(t)+0.5)*dt) / peak
	}
	return out
}

// Validate reports a profile that cannot shape a load.
func (p Profile) Validate() error {
	if len(p.KW) == 0 {
		return fmt.Errorf("load profile is empty: give at least one hourly value")
	}
	for i, v := range p.KW {
		if !(v >= 0) || math.IsInf(v, 0) {
			return fmt.Errorf("load profile value %d is %v: values must be finite and >= 0", i, v)
		}
	}
	if p.Peak() <= 0 {
		return fmt.Errorf("load profile is all zero: it needs a positive peak to scale spot loads")
	}
	return nil
}

// Baseline returns per-bus active and reactive baseline series (kW, kvar;
// index [bus][slot]) from spot loads scaled by shape. Capacitors inject their
// full rating in every slot.
func Baseline(loads []SpotLoad, shape []float64) (p, q [][]float64) {
	p = make([][]float64, len(loads))
	q = make([][]float64, len(loads))
	for b, l := range loads {
		p[b] = make([]float64, len(shape))
		q[b] = make([]float64, len(shape))
		for t, s := range shape {
			p[b][t] = l.P * s
			q[b][t] = l.Q*s - l.Cap
		}
	}
	return p, q
}
