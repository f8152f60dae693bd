package transport

import (
	"fmt"
	"strconv"
	"strings"
)

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

// CoordDropped is the subject on which the SO tells a bus's vehicles that
// it dropped one of them for silence (charging.Dropped).
func CoordDropped(feeder, bus int) string {
	return fmt.Sprintf("gridveil.v1.coord.f%d.b%d.dropped", feeder, bus)
}

// CoordReports matches every bus's reports (feeder < 0) or one feeder's.
func CoordReports(feeder int) string {
	if feeder < 0 {
		return "gridveil.v1.coord.*.*.report"
	}
	return fmt.Sprintf("gridveil.v1.coord.f%d.*.report", feeder)
}

// ParseCoord reads the feeder and bus out of a coordination subject. It
// runs once per report, so it parses by hand (fmt.Sscanf cost the SO a
// sixth of its time at 10^4 vehicles).
func ParseCoord(subject string) (feeder, bus int, kind string, err error) {
	const prefix = "gridveil.v1.coord.f"
	bad := func() (int, int, string, error) {
		return 0, 0, "", fmt.Errorf("%q is not a coordination subject (gridveil.v1.coord.f<feeder>.b<bus>.<kind>)", subject)
	}
	rest, ok := strings.CutPrefix(subject, prefix)
	if !ok {
		return bad()
	}
	f, rest, ok := strings.Cut(rest, ".b")
	if !ok {
		return bad()
	}
	b, kind, ok := strings.Cut(rest, ".")
	if !ok || kind == "" || strings.Contains(kind, ".") {
		return bad()
	}
	feeder, err1 := strconv.Atoi(f)
	bus, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || feeder < 0 || bus < 0 || f[0] == '+' || b[0] == '+' {
		return bad()
	}
	return feeder, bus, kind, nil
}

// CoordProgress is the subject on which the SO publishes each completed
// iteration's statistics (JSON, charging.Stats plus the SO's view of the
// aggregate), for dashboards and monitors. It carries only what the SO
// already holds: per-bus sums never appear on it.
const CoordProgress = "gridveil.v1.coord.progress"

// CoordHello is the subject on which an EV host says it is listening (its
// payload: the host's name, for logs). The SO answers by sending the
// current round again, so a host that subscribed after a broadcast, or
// reconnected, need not wait for the resend timer.
const CoordHello = "gridveil.v1.coord.hello"

// The subjects of masking (aggregate.MaskVehicle, MaskAggregator), per
// bus like the coordination's: a vehicle's key advertisement, the SO's
// signed key list, masked reports, the SO's requests (dropout notices and
// share requests) and the vehicles' answers. Reports, requests and answers
// travel in batches (aggregate.MaskBatch): one envelope per EV host, bus
// and phase, and one per bus and pass from the SO.
// ParseCoord reads them (kinds maskkey, maskkeys, maskrep, maskreq,
// maskans).

// MaskKey is where a bus's vehicles advertise their mask public keys.
func MaskKey(feeder, bus int) string { return coordSubject(feeder, bus, "maskkey") }

// MaskKeys is where the SO relays a bus's signed key list.
func MaskKeys(feeder, bus int) string { return coordSubject(feeder, bus, "maskkeys") }

// MaskReport is where a bus's EV hosts send their vehicles' masked
// reports, one batch per host and round.
func MaskReport(feeder, bus int) string { return coordSubject(feeder, bus, "maskrep") }

// MaskRequest is where the SO sends a bus's vehicles its requests, one
// batch per pass (each host takes the items of its vehicles).
func MaskRequest(feeder, bus int) string { return coordSubject(feeder, bus, "maskreq") }

// MaskAnswer is where a bus's EV hosts answer the SO's requests, one
// batch per host and pass.
func MaskAnswer(feeder, bus int) string { return coordSubject(feeder, bus, "maskans") }

// MaskToSO matches every bus's messages of one masking kind sent to the
// SO (maskkey, maskrep, maskans).
func MaskToSO(kind string) string { return "gridveil.v1.coord.*.*." + kind }

func coordSubject(feeder, bus int, kind string) string {
	return "gridveil.v1.coord.f" + strconv.Itoa(feeder) + ".b" + strconv.Itoa(bus) + "." + kind
}
