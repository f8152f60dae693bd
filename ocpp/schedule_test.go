package ocpp

import (
	"encoding/json"
	"errors"
	"testing"
)

// TestTxProfileVersions: for a vehicle that discharges (vehicle 3 of
// testdata/sim-v2g), the 2.0.1 TxProfile is valid OCPP 2.0.1 and carries
// its discharge slots as 0 W; the V2X profile is valid OCPP 2.1, carries
// them as negative setpoints, and is not valid 2.0.1 (so the CSMS, which
// validates what it sends, can never send it to a 2.0.1 station).
func TestTxProfileVersions(t *testing.T) {
	run, err := ReadSimRun("testdata/sim-v2g")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := run.Schedule(3)
	encode := func(p ChargingProfile) []byte {
		b, err := json.Marshal(SetChargingProfileRequest{EVSEID: 1, ChargingProfile: p})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	old, v2x := TxProfile(4, "T", s), TxProfileV2X(4, "T", s)
	if err := ValidateVersion(Subprotocol, "SetChargingProfile", false, encode(old)); err != nil {
		t.Errorf("the 2.0.1 TxProfile is not valid 2.0.1: %v", err)
	}
	if err := ValidateVersion(Subprotocol21, "SetChargingProfile", false, encode(v2x)); err != nil {
		t.Errorf("the V2X TxProfile is not valid 2.1: %v", err)
	}
	var rpc *RPCError
	if err := ValidateVersion(Subprotocol, "SetChargingProfile", false, encode(v2x)); !errors.As(err, &rpc) || rpc.Code != ErrPropertyConstraintViolation {
		t.Errorf("the V2X TxProfile against the 2.0.1 schema: %v, want a PropertyConstraintViolation", err)
	}
	neg := 0
	for k, w := range s.PowerW {
		if DischargeW(w) >= 0 {
			continue
		}
		neg++
		if p := old.ChargingSchedule[0].ChargingSchedulePeriod[k]; p.Limit != 0 {
			t.Errorf("2.0.1 period %d: limit %v W for a discharge of %v W, want 0", k, p.Limit, w)
		}
		if p := v2x.ChargingSchedule[0].ChargingSchedulePeriod[k]; p.Setpoint == nil || *p.Setpoint != DischargeW(w) || *p.Setpoint >= 0 {
			t.Errorf("2.1 period %d: %+v for a discharge of %v W", k, p, w)
		}
	}
	if neg == 0 {
		t.Fatal("vehicle 3 of testdata/sim-v2g never discharges")
	}
}
