package runfile

import (
	"fmt"
	"io"

	"github.com/gridveil/gridveil/report"
)

// Discharge is discharge.json: the day's discharge requests (C6 meets C2)
// and the settlement of the energy the vehicles gave back
// (docs/FORMATS.md, docs/ARCHITECTURE.md "V2G discharging").
type Discharge struct {
	Schema   string `json:"schema"` // gridveil/discharge/v1
	Scenario string `json:"scenario"`
	Seed     uint64 `json:"seed"`
	// Mode is the requests' discharging mode: centralized (to the grid)
	// or, with --market, distributed (first to load vehicles at the same
	// LAG through the V2V auction, the rest to the grid).
	Mode string `json:"mode"`
	// Willing is the share of bidirectional vehicles whose owners agree
	// (--v2g-willing); each vehicle's willingness is drawn from the seed.
	Willing float64 `json:"willing_fraction"`
	// AggregateMin is the fewest answers an aggregate the CA releases to
	// a LAG covers.
	AggregateMin int `json:"aggregate_min"`
	// WindowSlots is the length of a settlement window in slots (30
	// minutes, the market's delivery window).
	WindowSlots int `json:"window_slots"`
	// Price is what the grid company pays per kWh delivered to the grid,
	// milli-currency (--v2g-price).
	Price int64 `json:"price"`
	// Shortfall is the meters' model: in each window a vehicle delivers
	// its scheduled export, except that with this probability (drawn from
	// the seed) it delivers a uniform 50-100% of it (an owner who unplugs
	// early, a derated charger).
	Shortfall float64            `json:"shortfall_probability"`
	Requests  []DischargeRequest `json:"requests"`
	Asked     int                `json:"asked"`  // vehicles asked, over all requests
	Agreed    int                `json:"agreed"` // agreements the CA recorded
	// Bills are the CA's settlement per bidirectional vehicle (the CA
	// alone knows who agreed and who discharged; the LAGs and the SO never
	// see this list).
	Bills []DischargeBill `json:"bills"`
	// Totals over the bills.
	ScheduledWh int64 `json:"scheduled_wh"` // scheduled energy out of the vehicles, grid side
	ExportWh    int64 `json:"export_wh"`    // metered energy out of the vehicles, grid side
	ToGridWh    int64 `json:"to_grid_wh"`   // of it, sold to the grid company
	V2VWh       int64 `json:"v2v_wh"`       // of it, delivered against V2V awards
	GridPaid    int64 `json:"grid_paid"`    // what the grid company paid, milli-currency
	Discharge   int   `json:"discharging"`  // vehicles that discharged at all
}

// DischargeRequest is one discharge request of the CA to one LAG: its
// window and what the CA and the LAG learned of the answers, as counts.
type DischargeRequest struct {
	LAG    string `json:"lag"`
	Feeder int    `json:"feeder"`
	Bus    string `json:"bus"`
	// The request's window, slots [start_slot, end_slot): a vehicle that
	// agreed may discharge in it and nowhere else.
	StartSlot int    `json:"start_slot"`
	EndSlot   int    `json:"end_slot"`
	PowerW    uint32 `json:"power_w"` // asked of each vehicle
	Asked     int    `json:"asked"`   // storage and supply sessions the LAG forwarded it to
	Answered  int    `json:"answered"`
	Agreed    int    `json:"agreed"` // as the CA recorded them
	// What the LAG learned: the CA's released aggregate (answers counted,
	// total power agreed), present only once at least aggregate_min
	// vehicles answered.
	LAGAnswers *int   `json:"lag_answers,omitempty"`
	LAGAgreedW *int64 `json:"lag_agreed_w,omitempty"`
}

// DischargeBill is one bidirectional vehicle's settlement.
type DischargeBill struct {
	EV     string `json:"ev"`
	LAG    string `json:"lag"`
	Agreed bool   `json:"agreed"`
	// ExportWh is the scheduled energy out of the vehicle per settlement
	// window, grid side (the discharging part of its net schedule),
	// rounded to Wh per window; MeteredWh is what its meter read.
	ExportWh  []int64 `json:"export_wh"`
	MeteredWh []int64 `json:"metered_wh"`
	// Billed is the total the vehicle reported, sealed, to the CA when it
	// stopped discharging, as the CA billed it (minus: energy out).
	Billed   int64 `json:"billed_wh"`
	V2VWh    int64 `json:"v2v_wh"`     // delivered against V2V awards
	ToGridWh int64 `json:"to_grid_wh"` // the rest
	// GridPaid = floor(to_grid_wh x price / 1000): what the grid company
	// pays the vehicle's owner, milli-currency.
	GridPaid int64 `json:"grid_paid"`
}

// DischargeTable is the report's table of requests.
func DischargeTable(d *Discharge) report.Table {
	t := report.Table{
		Title:  fmt.Sprintf("Discharge on request (%s): %d LAGs asked, %d of %d vehicles agreed", d.Mode, len(d.Requests), d.Agreed, d.Asked),
		Header: []string{"LAG", "window (slots)", "power W", "asked", "answered", "agreed (CA)", "LAG's aggregate"},
	}
	for _, r := range d.Requests {
		agg := "withheld (fewer than " + fmt.Sprint(d.AggregateMin) + " answers)"
		if r.LAGAnswers != nil {
			agg = fmt.Sprintf("%d answers, %.1f kW agreed", *r.LAGAnswers, float64(*r.LAGAgreedW)/1000)
		}
		t.Rows = append(t.Rows, []string{r.LAG, fmt.Sprintf("%d-%d", r.StartSlot, r.EndSlot), fmt.Sprint(r.PowerW), fmt.Sprint(r.Asked), fmt.Sprint(r.Answered), fmt.Sprint(r.Agreed), agg})
	}
	t.Caption = fmt.Sprintf("The CA asked each LAG's storage and supply vehicles to discharge; each vehicle's Agree or Decline (owners willing with probability %.2f, drawn from the seed) was sealed to the CA and signed anonymously, so the LAG learned only the CA's aggregate, and only over at least %d answers. Only vehicles that agreed got a discharging set in the coordination. They exported %.1f kWh: %.1f kWh to the grid, paid %.3f by the grid company at %.3f per kWh, and %.1f kWh to load vehicles by the V2V auction.",
		d.Willing, d.AggregateMin, float64(d.ExportWh)/1000, float64(d.ToGridWh)/1000, float64(d.GridPaid)/1000, float64(d.Price)/1000, float64(d.V2VWh)/1000)
	return t
}

// PrintDischarge prints the discharge step's summary line.
func PrintDischarge(w io.Writer, d *Discharge) {
	if d == nil {
		return
	}
	fmt.Fprintf(w, "  discharge    %s requests at %d LAGs: %d of %d vehicles agreed; %d discharged %.1f kWh (%.1f kWh to the grid for %.3f, %.1f kWh V2V)\n",
		d.Mode, len(d.Requests), d.Agreed, d.Asked, d.Discharge, float64(d.ExportWh)/1000, float64(d.ToGridWh)/1000, float64(d.GridPaid)/1000, float64(d.V2VWh)/1000)
}
