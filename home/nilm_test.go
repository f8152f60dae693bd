package home

import (
	"math"
	"testing"
)

func TestF1(t *testing.T) {
	tr := func(v ...bool) []bool { return v }
	var truth [NumKinds][]bool
	truth[Kettle] = tr(true, false, true, false)
	truth[Cooker] = tr(false, false, false, false)
	truth[Fridge] = tr(true, true, true, true)
	cases := []struct {
		name  string
		det   map[Kind][]bool
		f1    float64
		kinds int
	}{
		{"perfect", map[Kind][]bool{Kettle: tr(true, false, true, false)}, 1, 1},
		{"half", map[Kind][]bool{Kettle: tr(true, false, false, false)}, 2.0 / 3, 1},
		{"false alarm on an unused kind scores 0", map[Kind][]bool{Kettle: tr(true, false, true, false), Cooker: tr(true, false, false, false)}, 0.5, 2},
		{"fridge is not scored", map[Kind][]bool{Kettle: tr(true, false, true, false), Fridge: tr(true, true, true, true)}, 1, 1},
		{"nothing detected", nil, 0, 1},
	}
	for _, c := range cases {
		det := newDetection(4)
		for k, v := range c.det {
			det[k] = v
		}
		s := F1(det, truth)
		if math.Abs(s.F1-c.f1) > 1e-12 || s.Kinds != c.kinds {
			t.Errorf("%s: F1 %v over %d kinds, want %v over %d", c.name, s.F1, s.Kinds, c.f1, c.kinds)
		}
	}
}

// TestAttackerLearns: on the raw household load the attacker does much
// better than its habits-only guess, so its F1 measures what a meter
// reveals.
func TestAttackerLearns(t *testing.T) {
	att := testAttacker(t)
	cfg := DefaultConfig()
	var raw, prior float64
	const n = 30
	for id := range n {
		hd, err := NewHomeDay(21, id, &cfg)
		if err != nil {
			t.Fatal(err)
		}
		m := Evaluate(hd, &Schedule{Meter: hd.Problem.Load, SOC: []float64{0}}, att)
		raw += m.F1 / n
		prior += m.F1Prior / n
	}
	t.Logf("raw load: attacker F1 %.3f, habits only %.3f", raw, prior)
	if raw < prior+0.15 {
		t.Errorf("attacker F1 on the raw load %.3f is not well above its habits-only %.3f", raw, prior)
	}
}

// TestR2FooledNotAttacker shows why R2 alone misleads. A meter that adds a
// constant 7 kW block to the load for five evening hours (what an EV
// charging at constant power does) drives R2 far down, yet the edge
// detector, which ignores constant offsets, still finds the appliances. A
// meter held perfectly constant gives R2 = 0 and leaves the attacker its
// habits-only score or more, which is not 0 either.
func TestR2FooledNotAttacker(t *testing.T) {
	att := testAttacker(t)
	cfg := DefaultConfig()
	const n = 30
	var r2Raw, r2Block, f1Raw, f1Block, edgeRaw, edgeBlock, f1Const, prior float64
	for id := range n {
		hd, err := NewHomeDay(22, id, &cfg)
		if err != nil {
			t.Fatal(err)
		}
		load := hd.Problem.Load
		block := append([]float64(nil), load...)
		for t := 17 * 4; t < 22*4; t++ {
			block[t] += 7
		}
		raw := Evaluate(hd, &Schedule{Meter: load, SOC: []float64{0}}, att)
		blk := Evaluate(hd, &Schedule{Meter: block, SOC: []float64{0}}, att)
		cst := Evaluate(hd, &Schedule{Meter: constant(len(load), 1), SOC: []float64{0}}, att)
		if cst.R2 != 0 || cst.LaggedR2 != 0 || cst.MI != 0 {
			t.Fatalf("constant meter: R2 %v, lagged %v, MI %v; want 0", cst.R2, cst.LaggedR2, cst.MI)
		}
		r2Raw += raw.R2 / n
		r2Block += blk.R2 / n
		f1Raw += raw.F1 / n
		f1Block += blk.F1 / n
		edgeRaw += raw.F1Edge / n
		edgeBlock += blk.F1Edge / n
		f1Const += cst.F1 / n
		prior += cst.F1Prior / n
	}
	t.Logf("raw: R2 %.3f F1 %.3f (edge %.3f); +7 kW block: R2 %.3f F1 %.3f (edge %.3f); constant: R2 0, F1 %.3f (habits only %.3f)",
		r2Raw, f1Raw, edgeRaw, r2Block, f1Block, edgeBlock, f1Const, prior)
	if r2Block > 0.5*r2Raw {
		t.Errorf("the block should fool R2: %.3f -> %.3f", r2Raw, r2Block)
	}
	if edgeBlock < 0.85*edgeRaw {
		t.Errorf("the edge detector should not be fooled by a constant block: %.3f -> %.3f", edgeRaw, edgeBlock)
	}
	if f1Const < prior || prior < 0.1 {
		t.Errorf("constant meter: F1 %.3f should be at least the habits-only %.3f, itself well above 0", f1Const, prior)
	}
}

func BenchmarkAttack(b *testing.B) {
	att := testAttacker(b)
	cfg := DefaultConfig()
	hd, err := NewHomeDay(1, 0, &cfg)
	if err != nil {
		b.Fatal(err)
	}
	s := &Schedule{Meter: hd.Problem.Load, SOC: []float64{0}}
	for b.Loop() {
		Evaluate(hd, s, att)
	}
}
