package ocpp

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gridveil/gridveil/ledger"
)

// cpSim makes the Node charge point of testdata/cp-sim runnable: npm ci
// with the committed lock file into a cache directory keyed by the lock
// file's hash, once. It returns the NODE_PATH to run cp.js with. No node
// or no registry fails the test with what to do; only -short skips it.
func cpSim(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the test against the ocpp-rpc charge point needs node and npm")
	}
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not on PATH: the OCPP tests drive a real ocpp-rpc charge point under Node.js; install Node.js 18 or later (or run go test -short to skip them)", tool)
		}
	}
	lock, err := os.ReadFile("testdata/cp-sim/package-lock.json")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(lock)
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "gridveil", "cp-sim-"+hex.EncodeToString(sum[:8]))
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "ocpp-rpc", "package.json")); err == nil {
		return filepath.Join(dir, "node_modules")
	}
	// Install into a fresh directory and rename it into place, so that a
	// failed or concurrent install never leaves a half-filled cache.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "install-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	for _, f := range []string{"package.json", "package-lock.json"} {
		data, err := os.ReadFile(filepath.Join("testdata/cp-sim", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmp, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci of testdata/cp-sim failed: %v\n%s\nthe OCPP tests need the ocpp-rpc package from the npm registry (is it reachable? npm config get registry)", err, out)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(filepath.Join(dir, "node_modules", "ocpp-rpc")); serr != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "node_modules")
}

// cpEvent is one line of cp.js's output.
type cpEvent struct {
	Event         string          `json:"event"`
	Params        json.RawMessage `json:"params"`
	Protocol      string          `json:"protocol"`
	TransactionID string          `json:"transactionId"`
	ProfileID     int             `json:"profileId"`
	Result        struct {
		IDTokenInfo IDTokenInfo `json:"idTokenInfo"`
	} `json:"result"`
	Authorize  string    `json:"authorize"` // refused: the Authorize status
	Started    string    `json:"started"`   // refused: the status TransactionEvent Started got
	RegisterWh float64   `json:"register_wh"`
	ExportWh   float64   `json:"export_wh"`
	SlotWh     []float64 `json:"slot_wh"`
	Error      string    `json:"error"`
	What       string    `json:"what"`
}

// runCP runs cp.js as station id against endpoint (ws://ADDR/ocpp or
// wss://...), vehicles showing tokens one after the other; env adds
// cp.js's TLS settings.
func runCP(t *testing.T, nodePath, endpoint, id, password string, tokens []IDToken, env ...string) []cpEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	toks, err := json.Marshal(tokens)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "node", "testdata/cp-sim/cp.js", endpoint, id, password, string(toks))
	cmd.Env = append(append(os.Environ(), "NODE_PATH="+nodePath), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var evs []cpEvent
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e cpEvent
		if jerr := json.Unmarshal(sc.Bytes(), &e); jerr != nil {
			t.Fatalf("cp.js printed %q: %v", sc.Text(), jerr)
		}
		evs = append(evs, e)
	}
	if err != nil {
		t.Fatalf("cp.js: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
	}
	return evs
}

// TestOCPPRPCChargePoint runs a real OCPP 2.0.1 client (ocpp-rpc in strict
// mode, which validates every message against the schemas in both
// directions) against the CSMS of a real LAG, with vehicles holding real
// C6 sessions: six vehicles show the station their tokens. The tokens of
// two sessions the LAG holds are accepted: authorize, start, receive the
// profile, report meter values, stop; the first gets vehicle 0's
// schedule, the second vehicle 1's. A forged token, the token of a
// session that ended, and the token of a session at another LAG are
// Unknown, an RFID card's UID (a contract identity) is Invalid, both at
// Authorize and at TransactionEvent; none of them gets a schedule or a
// line of metering. The profiles must be the vehicles' schedules of the
// sim run, and the ledger must settle the energy the station reported
// (which falls short of the schedule in each vehicle's last charging
// period), not the schedule. The CSMS pings every 2 s meanwhile: the
// client answers, and is never taken for dead.
func TestOCPPRPCChargePoint(t *testing.T) {
	nodePath := cpSim(t)
	run, err := ReadSimRun("testdata/sim")
	if err != nil {
		t.Fatal(err)
	}
	w := startAuthWorld(t, "lag-1", "lag-2")
	vs := w.vehicles(t, "cp", 4)
	_, tok0 := w.connect(t, vs[0], "lag-1")
	_, tok1 := w.connect(t, vs[1], "lag-1")
	gone, tokEnded := w.connect(t, vs[2], "lag-1")
	b := gone.S.Binding()
	if err := gone.Close(); err != nil {
		t.Fatal(err)
	}
	w.waitSession(t, "lag-1", b, false)
	_, tokOther := w.connect(t, vs[3], "lag-2")
	var fb [16]byte
	if _, err := rand.Read(fb[:]); err != nil {
		t.Fatal(err)
	}
	forged := IDToken{IDToken: hex.EncodeToString(fb[:]), Type: TokenType}
	card := IDToken{IDToken: "04A2B3C4D5E6F7", Type: "ISO14443"}
	tokens := []IDToken{tok0, forged, tokEnded, tokOther, card, tok1}
	refused := map[int]string{1: StatusUnknown, 2: StatusUnknown, 3: StatusUnknown, 4: StatusInvalid}
	if tok0 == tok1 || tok0 == tokEnded {
		t.Fatal("tokens of different sessions coincide")
	}

	dir := t.TempDir()
	c, addr := startCSMS(t, Options{Stations: map[string]string{"CP-1": "s3cret-cp1"}, Authorizer: w.authorizer("lag-1"), Schedules: run, Dir: dir,
		PingInterval: 2 * time.Second})
	evs := runCP(t, nodePath, "ws://"+addr+"/ocpp", "CP-1", "s3cret-cp1", tokens)

	var profiles []SetChargingProfileRequest
	var txs []cpEvent
	var authorized []string
	for _, e := range evs {
		switch e.Event {
		case "Authorize":
			authorized = append(authorized, e.Result.IDTokenInfo.Status)
		case "refused":
			var n int
			if _, err := fmt.Sscanf(e.TransactionID, "CP-1-tx-%d", &n); err != nil || refused[n] == "" {
				t.Errorf("transaction %q refused", e.TransactionID)
			} else if e.Authorize != refused[n] || e.Started != refused[n] {
				t.Errorf("token %d (%s): Authorize %q, TransactionEvent Started %q; want %q for both", n, tokens[n].Type, e.Authorize, e.Started, refused[n])
			}
		case "connected":
			if e.Protocol != Subprotocol {
				t.Errorf("negotiated subprotocol %q, want %q", e.Protocol, Subprotocol)
			}
		case "SetChargingProfile":
			var p SetChargingProfileRequest
			if err := json.Unmarshal(e.Params, &p); err != nil {
				t.Fatal(err)
			}
			profiles = append(profiles, p)
		case "transaction":
			txs = append(txs, e)
		case "unhandled":
			t.Errorf("the CSMS sent an unexpected call: %+v", e)
		}
	}
	for n, st := range authorized {
		if want := cmp.Or(refused[n], StatusAccepted); st != want {
			t.Errorf("token %d: Authorize %q, want %q", n, st, want)
		}
	}
	if len(authorized) != len(tokens) {
		t.Errorf("%d Authorize answers for %d tokens", len(authorized), len(tokens))
	}
	if len(profiles) != 2 || len(txs) != 2 {
		t.Fatalf("got %d profiles and %d transactions, want 2 and 2: %+v", len(profiles), len(txs), evs)
	}
	for n, p := range profiles {
		want, _ := run.Schedule(n)
		cp := p.ChargingProfile
		if cp.ChargingProfilePurpose != "TxProfile" || cp.TransactionID != txs[n].TransactionID || cp.StackLevel != 0 || cp.ID != n+1 || p.EVSEID != 1 {
			t.Errorf("profile %d: purpose %s, transaction %q, stack %d, id %d, evse %d; want TxProfile for %q, stack 0, id %d, evse 1",
				n, cp.ChargingProfilePurpose, cp.TransactionID, cp.StackLevel, cp.ID, p.EVSEID, txs[n].TransactionID, n+1)
		}
		if len(cp.ChargingSchedule) != 1 {
			t.Fatalf("profile %d has %d schedules", n, len(cp.ChargingSchedule))
		}
		s := cp.ChargingSchedule[0]
		if s.ChargingRateUnit != "W" || len(s.ChargingSchedulePeriod) != len(want.PowerW) || s.Duration != len(want.PowerW)*want.SlotSeconds {
			t.Fatalf("profile %d: unit %s, %d periods, duration %d; want W, %d periods (one per slot of the vehicle's window), %d s",
				n, s.ChargingRateUnit, len(s.ChargingSchedulePeriod), s.Duration, len(want.PowerW), len(want.PowerW)*want.SlotSeconds)
		}
		for k, per := range s.ChargingSchedulePeriod {
			if per.StartPeriod != k*want.SlotSeconds || per.Limit != LimitW(want.PowerW[k]) || abs(per.Limit-want.PowerW[k]) > 0.05 {
				t.Errorf("profile %d period %d: start %d limit %v W; want start %d, the schedule's %v W", n, k, per.StartPeriod, per.Limit, k*want.SlotSeconds, want.PowerW[k])
			}
		}
	}

	// The metered delivery the CSMS recorded is what the station reported.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	ds, err := ReadMetering(filepath.Join(dir, MeteringFile))
	if err != nil {
		t.Fatal(err)
	}
	// Only the accepted sessions' transactions were recorded, each with
	// its token.
	raw, err := os.ReadFile(filepath.Join(dir, MeteringFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		var r MeterRecord
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatal(err)
		}
		if !(r.Transaction == "CP-1-tx-0" && r.IDToken == tok0.IDToken) && !(r.Transaction == "CP-1-tx-5" && r.IDToken == tok1.IDToken) {
			t.Errorf("metering record of transaction %q with token %q: only CP-1-tx-0 (token 0) and CP-1-tx-5 (token 5) were authorised", r.Transaction, r.IDToken)
		}
	}
	if len(ds) != 2 {
		t.Fatalf("%d deliveries in the metering log, want 2", len(ds))
	}
	prevRegister := 0.0
	for n, d := range ds {
		if d.Transaction != txs[n].TransactionID || d.Vehicle != n || !d.Ended {
			t.Errorf("delivery %d: transaction %q vehicle %d ended %v; want %q, vehicle %d, ended", n, d.Transaction, d.Vehicle, d.Ended, txs[n].TransactionID, n)
		}
		reported := txs[n].RegisterWh - prevRegister
		prevRegister = txs[n].RegisterWh
		if abs(float64(d.TotalWh)-reported) > 1 {
			t.Errorf("delivery %d: %d Wh metered, the station reported %.1f Wh", n, d.TotalWh, reported)
		}
		for k, wh := range txs[n].SlotWh {
			if abs(float64(d.SlotWh[k])-wh) > 1 {
				t.Errorf("delivery %d slot %d: %d Wh metered, the station reported %.1f Wh", n, k, d.SlotWh[k], wh)
			}
		}
	}

	// Settlement: one ledger station (this CSMS's site) with rights equal
	// to the scheduled energy; the ledger charges penalties on the
	// reported shortfall.
	const spw, penalty = 4, 200
	slots := run.Slots()
	demand := make([]int64, (slots+spw-1)/spw)
	delivered := make([]int64, len(demand))
	for n, d := range ds {
		s, _ := run.Schedule(n)
		for k, w := range s.PowerW {
			demand[(s.FirstSlot+k)/spw] += int64(LimitW(w) * float64(s.SlotSeconds) / 3600)
		}
		for w, wh := range d.WindowWh(slots, spw) {
			delivered[w] += wh
		}
	}
	margin := append([]int64(nil), demand...) // rights cover the schedule exactly
	day, err := ledger.RunDay(ledger.DayConfig{Chain: "ocpp-test", Rule: "uniform", Penalty: penalty, Seed: 1, Margin: margin,
		Stations: []ledger.DayStation{{Name: "lag-1", Demand: demand, Delivered: delivered}}})
	if err != nil {
		t.Fatal(err)
	}
	short := false
	for w, win := range day.Windows {
		for _, r := range win.Rights {
			if r.Delivered != delivered[w] {
				t.Errorf("window %d: the ledger settled %d Wh, the station reported %d Wh", w, r.Delivered, delivered[w])
			}
			dev := max(r.Delivered-r.Final, r.Final-r.Delivered)
			if want := (dev*penalty + 999) / 1000; r.Penalty != want {
				t.Errorf("window %d: penalty %d for a deviation of %d Wh, want %d", w, r.Penalty, dev, want)
			}
			short = short || r.Delivered < r.Final
		}
	}
	if !short {
		t.Errorf("no window fell short of its rights, but the station drew half the limit in each vehicle's last period")
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// TestOCPPRPC21V2X runs the ocpp-rpc charge point on OCPP 2.1 (strict
// mode against the 2.1 schemas) against the CSMS with the schedules of a
// V2G run: four transactions get vehicles 0 to 3, vehicle 3 a battery that
// discharges. Each profile must carry its vehicle's schedule period by
// period: a charging slot as ChargingOnly with its limit, a discharging
// slot as CentralSetpoint with the (negative) setpoint and discharge limit
// of the schedule and limit 0; the client, following the setpoints, runs
// up its export register, and the CSMS meters what it fed back slot by
// slot (Delivery.ExportSlotWh) as the station reported it.
func TestOCPPRPC21V2X(t *testing.T) {
	nodePath := cpSim(t)
	run, err := ReadSimRun("testdata/sim-v2g")
	if err != nil {
		t.Fatal(err)
	}
	w := startAuthWorld(t, "lag-1")
	var tokens []IDToken
	for _, v := range w.vehicles(t, "v2x", 4) {
		_, tok := w.connect(t, v, "lag-1")
		tokens = append(tokens, tok)
	}
	dir := t.TempDir()
	c, addr := startCSMS(t, Options{Stations: map[string]string{"CP-21": "s3cret-cp21"}, Authorizer: w.authorizer("lag-1"), Schedules: run, Dir: dir})
	evs := runCP(t, nodePath, "ws://"+addr+"/ocpp", "CP-21", "s3cret-cp21", tokens, "CP_PROTOCOL="+Subprotocol21)
	var profiles []SetChargingProfileRequest
	var txs []cpEvent
	for _, e := range evs {
		switch e.Event {
		case "connected":
			if e.Protocol != Subprotocol21 {
				t.Fatalf("negotiated %q, want %q", e.Protocol, Subprotocol21)
			}
		case "SetChargingProfile":
			var p SetChargingProfileRequest
			if err := json.Unmarshal(e.Params, &p); err != nil {
				t.Fatal(err)
			}
			profiles = append(profiles, p)
		case "transaction":
			txs = append(txs, e)
		}
	}
	if len(profiles) != 4 || len(txs) != 4 {
		t.Fatalf("%d profiles and %d transactions, want 4 and 4: %+v", len(profiles), len(txs), evs)
	}
	discharging := 0
	for n, p := range profiles {
		want, _ := run.Schedule(n)
		s := p.ChargingProfile.ChargingSchedule[0]
		if p.ChargingProfile.TransactionID != txs[n].TransactionID || len(s.ChargingSchedulePeriod) != len(want.PowerW) {
			t.Fatalf("profile %d: transaction %q, %d periods; want %q, %d", n, p.ChargingProfile.TransactionID, len(s.ChargingSchedulePeriod), txs[n].TransactionID, len(want.PowerW))
		}
		for k, per := range s.ChargingSchedulePeriod {
			x := math.Round(want.PowerW[k]*10) / 10
			if per.StartPeriod != k*want.SlotSeconds {
				t.Errorf("vehicle %d period %d starts at %d s, want %d", n, k, per.StartPeriod, k*want.SlotSeconds)
			}
			if x < 0 {
				discharging++
				if per.OperationMode != "CentralSetpoint" || per.Setpoint == nil || *per.Setpoint != x || per.DischargeLimit == nil || *per.DischargeLimit != x || per.Limit != 0 {
					t.Errorf("vehicle %d period %d: %+v; want CentralSetpoint, setpoint and dischargeLimit %v W (the schedule's %v kW), limit 0", n, k, per, x, want.PowerW[k]/1000)
				}
			} else if per.OperationMode != "ChargingOnly" || per.Limit != x || per.Setpoint != nil || per.DischargeLimit != nil {
				t.Errorf("vehicle %d period %d: %+v; want ChargingOnly with limit %v W", n, k, per, x)
			}
		}
	}
	if discharging == 0 {
		t.Fatal("no discharging slot in vehicles 0-3 of testdata/sim-v2g: the test checks nothing about discharge")
	}
	if txs[3].ExportWh <= 0 {
		t.Fatalf("the station exported %v Wh following vehicle 3's setpoints, want more than 0", txs[3].ExportWh)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	ds, err := ReadMetering(filepath.Join(dir, MeteringFile))
	if err != nil || len(ds) != 4 {
		t.Fatalf("%d deliveries (%v), want 4", len(ds), err)
	}
	prev := 0.0
	for n, d := range ds {
		if reported := txs[n].ExportWh - prev; abs(float64(d.ExportWh)-reported) > 1 {
			t.Errorf("vehicle %d: %d Wh export metered, the station reported %.1f Wh", n, d.ExportWh, reported)
		}
		prev = txs[n].ExportWh
		for k, wh := range txs[n].SlotWh {
			got := int64(0)
			if k < len(d.ExportSlotWh) {
				got = d.ExportSlotWh[k]
			}
			if want := max(-wh, 0); abs(float64(got)-want) > 1 {
				t.Errorf("vehicle %d slot %d: %d Wh export metered, the station fed back %.1f Wh", n, k, got, want)
			}
		}
	}
}
