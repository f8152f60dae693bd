package home

import (
	"errors"
	"strings"
	"testing"
)

func TestParseTariff(t *testing.T) {
	hourly := strings.TrimSuffix(strings.Repeat("0.1,", 23), ",") + ",0.4"
	cases := []struct {
		in      string
		want0   float64
		want23  float64
		errWant string
	}{
		{"tou", 0.10, 0.20, ""},
		{"flat", FlatPrice, FlatPrice, ""},
		{"flat:0.31", 0.31, 0.31, ""},
		{hourly, 0.1, 0.4, ""},
		{"flat:-0.2", 0, 0, "price -0.2 for hour 00:00 is negative"},
		{strings.Replace(hourly, "0.1,", "-0.1,", 1), 0, 0, "price -0.1 for hour 00:00 is negative"},
		{"0.1,0.2", 0, 0, "24 comma-separated hourly prices (got 2 values)"},
		{strings.Replace(hourly, "0.1,", "x,", 1), 0, 0, `price "x" for hour 00:00 is not a number`},
		{"flat:NaN", 0, 0, "not finite"},
	}
	for _, c := range cases {
		tf, err := ParseTariff(c.in)
		if c.errWant != "" {
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.errWant) {
				t.Errorf("%q: error %v, want %q", c.in, err, c.errWant)
			}
			continue
		}
		if err != nil || tf.Hourly[0] != c.want0 || tf.Hourly[23] != c.want23 {
			t.Errorf("%q: %v, %v", c.in, tf.Hourly, err)
		}
	}
}

// FuzzParseTariff: the command-line tariff decoder never panics, and what
// it accepts is a valid tariff.
func FuzzParseTariff(f *testing.F) {
	for _, s := range []string{"tou", "flat", "flat:0.3", "flat:-1", strings.Repeat("0.2,", 23) + "0.2", "1e400", ",,,", "flat:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tf, err := ParseTariff(s)
		if err != nil {
			return
		}
		if err := tf.Validate(); err != nil {
			t.Fatalf("accepted %q but %v", s, err)
		}
	})
}

// TestPriceSignal follows the seed's steps 1 and 2: the supplier's signal
// reaches the manager through the meter, which refuses replays and
// negative prices, and the manager's schedule splits the load between
// battery and grid (steps 3-5).
func TestPriceSignal(t *testing.T) {
	tou := TimeOfUse()
	sig := tou.Announce("s", 1, 96, 0.25)
	if len(sig.Prices) != 96 || sig.Prices[0] != 0.1 || sig.Prices[16*4] != 0.35 || sig.Prices[21*4] != 0.2 {
		t.Fatalf("signal prices %v", sig.Prices)
	}
	var m SmartMeter
	if _, err := m.Relay(sig); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Relay(sig); err == nil || !strings.Contains(err.Error(), "not newer") {
		t.Errorf("replay: %v", err)
	}
	bad := tou.Announce("s", 2, 96, 0.25)
	bad.Prices[5] = -1
	if _, err := m.Relay(bad); err == nil || !strings.Contains(err.Error(), "price -1 in slot 5") {
		t.Errorf("negative price: %v", err)
	}
	cfg := DefaultConfig()
	hd, _ := NewHomeDay(1, 0, &cfg)
	s, err := Optimal{}.Schedule(hd.Problem)
	if err != nil {
		t.Fatal(err)
	}
	fb, fg := Supply(hd.Problem, s)
	for i, l := range hd.Problem.Load {
		if fb[i] < 0 || fg[i] < -1e-9 || fb[i]+fg[i] != l {
			t.Fatalf("slot %d: battery %v + grid %v != load %v", i, fb[i], fg[i], l)
		}
	}
}

func TestGenerator(t *testing.T) {
	if NumKinds < 8 {
		t.Fatalf("%d appliance kinds; the issue asks for at least 8", NumKinds)
	}
	cfg := DefaultConfig()
	seen := map[Kind]bool{}
	for id := range 50 {
		hd, err := NewHomeDay(2, id, &cfg)
		if err != nil {
			t.Fatal(err)
		}
		d := hd.Day
		var total float64
		for _, v := range d.LoadKW {
			total += v / 60
		}
		if total < 2 || total > 40 {
			t.Errorf("home %d uses %.1f kWh a day", id, total)
		}
		for i, a := range d.Household.Appliances {
			truth := d.Truth(i, 15)
			kw := d.SlotKW(i, 15)
			for s := range truth {
				if truth[s] != (kw[s] > 0) {
					t.Fatalf("home %d %s slot %d: truth %v but %v kW", id, a.Kind, s, truth[s], kw[s])
				}
				if truth[s] {
					seen[a.Kind] = true
				}
			}
		}
		sum := 0.0
		for _, v := range hd.Problem.Load {
			sum += v * 0.25
		}
		if diff := sum - total; diff > 1e-9 || diff < -1e-9 {
			t.Errorf("home %d: slot load %v kWh, minute load %v kWh", id, sum, total)
		}
	}
	for k := range NumKinds {
		if !seen[Kind(k)] {
			t.Errorf("kind %s never used in 50 homes", Kind(k))
		}
	}
}
