package grid

// SpotLoad is a bus's peak load: the IEEE feeder's spot load, which a profile
// shape scales over the day. Cap is a shunt capacitor's rating, a constant
// reactive injection that does not follow the profile.
type SpotLoad struct {
	P   float64 // peak active load, kW (three phases summed)
	Q   float64 // peak reactive load, kvar
	Cap float64 // shunt capacitor, kvar
}

// IEEE13V0 is the slack voltage used for the IEEE 13-node feeder. With
// v0 = 1.0 the baseline alone sags to 0.942 pu at bus 652 at the evening
// peak, below the 0.95 limit, so no charging schedule could be feasible. The
// real feeder's substation regulator holds the source near 1.03-1.05 pu; we
// take the bottom of that band, 1.03, where the baseline alone keeps every
// bus at or above 0.974 pu (bus 652 at the peak hour; see
// TestIEEE13BaselineFeasible) and evening charging has a finite margin.
const IEEE13V0 = 1.03

// IEEE13 returns the IEEE 13-node test feeder reduced to a single-phase
// positive-sequence equivalent at 4.16 kV on a 1 MVA base (docs/ARCHITECTURE.md C1),
// and its spot loads in bus order. Node 670 is kept: the distributed load of
// the 632-671 line is lumped there, one third of the way along the line, as
// the IEEE documentation suggests.
func IEEE13() (Feeder, []SpotLoad) {
	type line struct {
		name   string
		parent string
		r, x   float64
		load   SpotLoad
	}
	lines := []line{
		{"650", "", 0, 0, SpotLoad{}},
		{"632", "650", 0.004070, 0.013062, SpotLoad{}},
		{"670", "632", 0.001358, 0.004356, SpotLoad{P: 200, Q: 116}},
		{"671", "670", 0.002713, 0.008706, SpotLoad{P: 1155, Q: 660}},
		{"680", "671", 0.002035, 0.006531, SpotLoad{}},
		{"633", "632", 0.003240, 0.004160, SpotLoad{}},
		{"634", "633", 0.022, 0.040, SpotLoad{P: 400, Q: 290}},
		{"645", "632", 0.006129, 0.004886, SpotLoad{P: 170, Q: 125}},
		{"646", "645", 0.003677, 0.002932, SpotLoad{P: 230, Q: 132}},
		{"684", "671", 0.003677, 0.002932, SpotLoad{}},
		{"611", "684", 0.004364, 0.004424, SpotLoad{P: 170, Q: 80, Cap: 100}},
		{"652", "684", 0.011754, 0.004486, SpotLoad{P: 128, Q: 86}},
		{"692", "671", 0, 0, SpotLoad{P: 170, Q: 151}}, // switch
		{"675", "692", 0.002635, 0.002255, SpotLoad{P: 843, Q: 462, Cap: 600}},
	}
	f := Feeder{Name: "ieee13", V0: IEEE13V0, SBase: 1000}
	loads := make([]SpotLoad, len(lines))
	index := map[string]int{}
	for i, l := range lines {
		parent := -1
		if l.parent != "" {
			parent = index[l.parent]
		}
		index[l.name] = i
		f.Buses = append(f.Buses, Bus{Name: l.name, Parent: parent, R: l.r, X: l.x})
		loads[i] = l.load
	}
	return f, loads
}

// IEEE13EVBuses lists the buses of the original 13-node feeder other than
// the substation: the 12 buses at which seed 001 places its vehicles (670 is
// an artificial node carrying the line's distributed load).
var IEEE13EVBuses = []string{"632", "671", "680", "633", "634", "645", "646", "684", "611", "652", "692", "675"}
