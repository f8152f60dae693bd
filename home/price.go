package home

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Tariff is a supplier's daily price schedule: 24 hourly prices in money
// per kWh, hour 0 starting at 00:00.
type Tariff struct {
	Name   string
	Hourly [24]float64
}

// TimeOfUse is the default time-of-use tariff: off-peak 0.10 from 00:00 to
// 07:00, peak 0.35 from 16:00 to 21:00, 0.20 otherwise.
func TimeOfUse() Tariff {
	t := Tariff{Name: "tou"}
	for h := range 24 {
		switch {
		case h < 7:
			t.Hourly[h] = 0.10
		case h >= 16 && h < 21:
			t.Hourly[h] = 0.35
		default:
			t.Hourly[h] = 0.20
		}
	}
	return t
}

// Flat is a flat tariff at price per kWh.
func Flat(price float64) Tariff {
	t := Tariff{Name: "flat"}
	for h := range 24 {
		t.Hourly[h] = price
	}
	return t
}

// FlatPrice is the default flat tariff's price, the time-of-use tariff's
// mean.
const FlatPrice = 0.2

// ParseTariff reads a tariff from the command line: "tou", "flat",
// "flat:PRICE", or 24 comma-separated hourly prices from 00:00. Prices must
// be finite and >= 0.
func ParseTariff(s string) (Tariff, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "tou":
		return TimeOfUse(), nil
	case s == "flat":
		return Flat(FlatPrice), nil
	case strings.HasPrefix(s, "flat:"):
		v, err := parsePrice(strings.TrimPrefix(s, "flat:"), 0)
		if err != nil {
			return Tariff{}, err
		}
		return Flat(v), nil
	}
	fields := strings.Split(s, ",")
	if len(fields) != 24 {
		return Tariff{}, fmt.Errorf("%w: tariff %q: give tou, flat, flat:PRICE or 24 comma-separated hourly prices (got %d values)", ErrInvalid, clip(s, 40), len(fields))
	}
	t := Tariff{Name: "custom"}
	for h, f := range fields {
		v, err := parsePrice(f, h)
		if err != nil {
			return Tariff{}, err
		}
		t.Hourly[h] = v
	}
	return t, nil
}

func parsePrice(f string, hour int) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
	if err != nil {
		return 0, fmt.Errorf("%w: price %q for hour %02d:00 is not a number; give money per kWh such as 0.25", ErrInvalid, clip(f, 20), hour)
	}
	if !finite(v) || v < 0 {
		return 0, fmt.Errorf("%w: price %v for hour %02d:00 is negative or not finite; prices must be >= 0 (negative prices are not modelled)", ErrInvalid, v, hour)
	}
	return v, nil
}

func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "..."
	}
	return s
}

// Validate reports a negative or non-finite price.
func (t *Tariff) Validate() error {
	for h, v := range t.Hourly {
		if !finite(v) || v < 0 {
			return fmt.Errorf("%w: tariff %q: price %v for hour %02d:00 is negative or not finite; prices must be >= 0", ErrInvalid, t.Name, v, h)
		}
	}
	return nil
}

// Slots samples the tariff for slots of dt hours from 00:00: each slot
// takes the price of the hour its start falls in.
func (t *Tariff) Slots(slots int, dt float64) []float64 {
	out := make([]float64, slots)
	for i := range out {
		h := int(math.Floor(float64(i)*dt+1e-9)) % 24
		out[i] = t.Hourly[h]
	}
	return out
}

// PriceSignal is the message that carries a day's prices from the power
// supplier through the smart meter to the home energy manager (seed 000,
// section 3.3, steps 1 and 2).
type PriceSignal struct {
	Supplier string
	Seq      uint64    // strictly increasing per supplier
	Tariff   string    // name of the tariff the prices come from
	DT       float64   // slot length, hours
	Prices   []float64 // one price per slot from 00:00, money per kWh
}

// Announce is step 1: the supplier sets the prices for the coming day and
// sends them to the smart meter.
func (t *Tariff) Announce(supplier string, seq uint64, slots int, dt float64) PriceSignal {
	return PriceSignal{Supplier: supplier, Seq: seq, Tariff: t.Name, DT: dt, Prices: t.Slots(slots, dt)}
}

// SmartMeter relays price signals to the home energy manager (step 2). It
// rejects malformed signals and replays: a signal whose sequence number is
// not above the last one relayed.
type SmartMeter struct {
	last    uint64
	started bool
}

// Relay checks a signal and passes it on.
func (m *SmartMeter) Relay(sig PriceSignal) (PriceSignal, error) {
	if m.started && sig.Seq <= m.last {
		return PriceSignal{}, fmt.Errorf("%w: price signal %d from %q is not newer than %d already relayed; the supplier must number signals upwards", ErrInvalid, sig.Seq, sig.Supplier, m.last)
	}
	if !(sig.DT > 0) || len(sig.Prices) == 0 {
		return PriceSignal{}, fmt.Errorf("%w: price signal %d has %d prices of %v h; it must cover the day", ErrInvalid, sig.Seq, len(sig.Prices), sig.DT)
	}
	for i, v := range sig.Prices {
		if !finite(v) || v < 0 {
			return PriceSignal{}, fmt.Errorf("%w: price signal %d: price %v in slot %d is negative or not finite; prices must be >= 0", ErrInvalid, sig.Seq, v, i)
		}
	}
	m.last, m.started = sig.Seq, true
	out := sig
	out.Prices = append([]float64(nil), sig.Prices...)
	return out, nil
}

// Supply splits each slot's household load between the battery and the
// grid, the outcome of steps 3 to 5: the manager's schedule dispatches the
// battery first at its discharge power, the grid supplies the rest (step
// 4 when the battery is empty or away, step 5 when both supply at once).
func Supply(p *Problem, s *Schedule) (fromBattery, fromGrid []float64) {
	fromBattery = make([]float64, len(p.Load))
	fromGrid = make([]float64, len(p.Load))
	for t, l := range p.Load {
		fromBattery[t] = math.Min(s.Discharge[t], l)
		fromGrid[t] = l - fromBattery[t]
	}
	return fromBattery, fromGrid
}
