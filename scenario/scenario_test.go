package scenario

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/gridveil/gridveil/charging"
)

func build(t *testing.T, name string, seed uint64, evs int) (*charging.Problem, *Meta) {
	t.Helper()
	spec, err := Load(name)
	if err != nil {
		t.Fatal(err)
	}
	p, m, err := Build(spec, seed, evs)
	if err != nil {
		t.Fatal(err)
	}
	return p, m
}

func TestPaperScenario(t *testing.T) {
	p, m := build(t, "ieee13-paper", 1, 0)
	if len(p.EVs) != 84 || p.Slots != 48 || p.DT != 0.25 || p.VMin != 0.95 || m.Start != "19:00" {
		t.Fatalf("paper set-up wrong: %d EVs, %d slots of %v h from %s, vmin %v", len(p.EVs), p.Slots, p.DT, m.Start, p.VMin)
	}
	perBus := map[int]int{}
	for _, ev := range p.EVs {
		perBus[ev.Bus]++
		if ev.PMax != 6.6 || ev.Efficiency != 0.9 || ev.Arrive != 0 || ev.Depart != 48 || ev.Energy < 5 || ev.Energy > 25 {
			t.Fatalf("EV %+v is not the paper's", ev)
		}
	}
	if len(perBus) != 12 {
		t.Fatalf("EVs at %d buses, want 12", len(perBus))
	}
	for b, n := range perBus {
		if n != 7 {
			t.Fatalf("bus %d has %d EVs, want 7", b, n)
		}
	}
}

func instanceBytes(t *testing.T, p *charging.Problem, m *Meta) []byte {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, NewInstance(p, m)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDeterministic(t *testing.T) {
	for _, name := range Builtins() {
		bytesOf := func(seed uint64) []byte {
			p, m := build(t, name, seed, 0)
			return instanceBytes(t, p, m)
		}
		a, b, c := bytesOf(42), bytesOf(42), bytesOf(43)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: same seed, different instance", name)
		}
		if bytes.Equal(a, c) {
			t.Errorf("%s: seeds 42 and 43 give the same instance", name)
		}
	}
}

func TestRegionSize(t *testing.T) {
	p, _ := build(t, "ieee13-paper", 1, 1000)
	if len(p.EVs) != 1000 || len(p.Feeders) != 12 {
		t.Fatalf("--evs 1000: %d EVs on %d feeders, want 1000 on 12", len(p.EVs), len(p.Feeders))
	}
	names := map[string]bool{}
	for _, f := range p.Feeders {
		names[f.Name] = true
	}
	if len(names) != 12 {
		t.Fatal("feeder names are not unique")
	}
	last := 0
	for _, ev := range p.EVs {
		if ev.Feeder == 11 {
			last++
		}
	}
	if last != 1000-11*84 {
		t.Fatalf("last feeder has %d EVs, want %d", last, 1000-11*84)
	}
}

// TestInstanceRoundTrip: instance.json rebuilds the same problem, and that
// problem solves to the same optimum.
func TestInstanceRoundTrip(t *testing.T) {
	p, m := build(t, "ieee13-region", 3, 300)
	data := instanceBytes(t, p, m)
	q, m2, err := ReadInstance(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if again := instanceBytes(t, q, m2); !bytes.Equal(data, again) {
		t.Fatal("instance changed on a round trip through JSON")
	}
	a, err := charging.Solve(p, charging.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := charging.Solve(q, charging.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Objective != b.Objective {
		t.Fatalf("objective %v from the scenario, %v from its instance file", a.Objective, b.Objective)
	}
}

func TestBadScenarios(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown field", "name: x\nslotz: 4\n", `unknown key "slotz" (line 2, column 1): at the top level the keys are name,`},
		{"unknown nested field", "feeder:\n  buses:\n    - {name: s}\n    - {name: a, parent: s, r: 0.1}\n", `unknown key "feeder.buses[1].r" (line 4, column 28): in feeder.buses[1] the keys are name, parent, r_pu,`},
		{"malformed", "name: [unclosed\n", "invalid scenario"},
		{"empty", "", "empty"},
		{"bad clock", "start: \"25:00\"\n", "not HH:MM"},
		{"unknown bus in list", "ev_list:\n - {id: a, bus: \"999\", pmax_kw: 7, energy_kwh: 5, arrive_slot: 0, depart_slot: 10}\n", `unknown bus "999"`},
		{"unmeetable demand", "ev_list:\n - {id: big, bus: \"652\", pmax_kw: 7, energy_kwh: 500, arrive_slot: 0, depart_slot: 10}\n", `EV "big": demand 500.000 kWh cannot be met`},
		{"unknown ev bus", "evs: {per_bus: 1, buses: [\"777\"], pmax_kw: 7, energy_kwh: [1, 2]}\n", `"777", which is not a load bus`},
		{"bad feeder parent", "feeder:\n  buses:\n   - {name: s}\n   - {name: a, parent: zz, r_pu: 0.01}\n", `parent "zz" is not listed before it`},
		{"unknown builtin feeder", "feeder: {builtin: ieee9000}\n", "ieee9000"},
		{"evs without fleet", "evs: {per_bus: 0}\n", ""},
		{"infeasible baseline", "feeder: {v0_pu: 1.0}\nstart: \"17:00\"\n", "the baseline alone drives bus"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec, err := Parse(strings.NewReader(c.yaml))
			if err == nil {
				_, _, err = Build(spec, 1, 0)
			}
			if c.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
			if !errors.Is(err, ErrScenario) && !errors.Is(err, charging.ErrInvalidProblem) {
				t.Fatalf("error %v is neither ErrScenario nor ErrInvalidProblem", err)
			}
		})
	}
	if _, err := Load("no-such-scenario"); err == nil || !strings.Contains(err.Error(), "ieee13-paper") {
		t.Fatalf("unknown scenario name: %v, want the list of built-ins", err)
	}
}

func TestBadInstances(t *testing.T) {
	p, m := build(t, "ieee13-paper", 1, 0)
	good := string(instanceBytes(t, p, m))
	cases := []struct{ name, doc, want string }{
		{"not json", "{", "not valid JSON"},
		{"wrong schema", strings.Replace(good, InstanceSchema, "gridveil/instance/v0", 1), "instance schema"},
		{"unknown bus", strings.Replace(good, `"bus":"652"`, `"bus":"65x"`, 1), `unknown bus "65x"`},
		{"unknown feeder", strings.Replace(good, `"feeder":"ieee13"`, `"feeder":"nope"`, 1), `unknown feeder "nope"`},
		{"extra field", strings.Replace(good, `"slots":48`, `"slots":48,"colour":1`, 1), "unknown field"},
		{"too few baseline values", strings.Replace(good, `"slots":48`, `"slots":47`, 1), "baseline has 48"},
	}
	for _, c := range cases {
		_, _, err := ReadInstance(strings.NewReader(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range Builtins() {
		data, _ := builtinFS.ReadFile("builtin/" + name + ".yaml")
		f.Add(data)
	}
	f.Add([]byte("ev_list:\n - {id: a, bus: \"652\", pmax_kw: 7, energy_kwh: 5, arrive_slot: 0, depart_slot: 10}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := Parse(bytes.NewReader(data))
		if err != nil {
			return
		}
		// Keep fuzzed regions small; the size checks are tested above.
		if spec.Region.Feeders > 4 || spec.EVs.PerBus > 20 || spec.Slots > 200 || len(spec.EVList) > 50 {
			return
		}
		_, _, _ = Build(spec, 1, 0)
	})
}

func FuzzReadInstance(f *testing.F) {
	spec, _ := Load("ieee13-paper")
	spec.EVs.PerBus = 1
	spec.Slots = 4
	p, m, err := Build(spec, 1, 0)
	if err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	_ = WriteJSON(&buf, NewInstance(p, m))
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, _ = ReadInstance(bytes.NewReader(data))
	})
}
