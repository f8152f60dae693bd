package transport

import "fmt"

// Subjects. Every subject starts with gridveil.v1 (the version of the
// subject layout) and names the concept, then the feeder and bus by index
// (f<feeder>.b<bus>), so a subscriber can take one bus, one feeder
// (gridveil.v1.coord.f3.*.report) or everything (gridveil.v1.coord.*.*.report).
// docs/PLATFORM.md lists who publishes and who may read each one.

// CoordBroadcast is the subject on which the SO sends a bus's vehicles the
// round's broadcast.
func CoordBroadcast(feeder, bus int) string {
	return fmt.Sprintf("gridveil.v1.coord.f%d.b%d.bcast", feeder, bus)
}

// CoordReport is the subject on which a bus's vehicles send their reports.
func CoordReport(feeder, bus int) string {
	return fmt.Sprintf("gridveil.v1.coord.f%d.b%d.report", feeder, bus)
}

// CoordReports matches every bus's reports (feeder < 0) or one feeder's.
func CoordReports(feeder int) string {
	if feeder < 0 {
		return "gridveil.v1.coord.*.*.report"
	}
	return fmt.Sprintf("gridveil.v1.coord.f%d.*.report", feeder)
}

// ParseCoord reads the feeder and bus out of a coordination subject.
func ParseCoord(subject string) (feeder, bus int, kind string, err error) {
	n, err := fmt.Sscanf(subject, "gridveil.v1.coord.f%d.b%d.%s", &feeder, &bus, &kind)
	if err != nil || n != 3 || feeder < 0 || bus < 0 {
		return 0, 0, "", fmt.Errorf("%q is not a coordination subject (gridveil.v1.coord.f<feeder>.b<bus>.<kind>)", subject)
	}
	return feeder, bus, kind, nil
}

// CoordProgress is the subject on which the SO publishes each completed
// iteration's statistics (JSON, charging.Stats plus the SO's view of the
// aggregate), for dashboards and monitors. It carries only what the SO
// already holds: per-bus sums never appear on it.
const CoordProgress = "gridveil.v1.coord.progress"
