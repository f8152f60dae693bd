package dashboard

import "encoding/json"

// The parts of gridveil's run files that the dashboard reads, as
// docs/FORMATS.md, LEDGER.md, LDP.md and HOME.md document them. Fields the
// views do not use are left out: encoding/json skips them.

type instanceFile struct {
	Schema   string  `json:"schema"`
	Scenario string  `json:"scenario"`
	Seed     uint64  `json:"seed"`
	Slots    int     `json:"slots"`
	DT       float64 `json:"dt_hours"`
	Start    string  `json:"start"`
	VMin     float64 `json:"vmin_pu"`
	Feeders  []struct {
		Name  string  `json:"name"`
		Slack string  `json:"slack"`
		V0    float64 `json:"v0_pu"`
		Buses []struct {
			Name       string    `json:"name"`
			Parent     string    `json:"parent"`
			BaselineKW []float64 `json:"baseline_kw"`
		} `json:"buses"`
	} `json:"feeders"`
	EVs []struct {
		ID     string `json:"id"`
		Feeder string `json:"feeder"`
		Bus    string `json:"bus"`
	} `json:"evs"`
}

type solutionFile struct {
	Schema       string               `json:"schema"`
	Scenario     string               `json:"scenario"`
	Seed         uint64               `json:"seed"`
	Privacy      string               `json:"privacy"`
	Iterations   int                  `json:"iterations"`
	Converged    bool                 `json:"converged"`
	Objective    float64              `json:"objective"`
	RelativeGap  *float64             `json:"relative_gap"`
	BaselineKW   []float64            `json:"baseline_kw"`
	AggregateKW  []float64            `json:"aggregate_kw"`
	Schedules    map[string][]float64 `json:"schedules"`
	Voltages     map[string][]float64 `json:"voltages_pu"`
	Duals        map[string][]float64 `json:"duals"`
	MinVoltage   float64              `json:"min_voltage_pu"`
	MinVoltageAt string               `json:"min_voltage_at"`
	Violations   int                  `json:"violations"`
	SOView       *struct {
		Why         string    `json:"why"`
		BaselineKW  []float64 `json:"baseline_kw"`
		AggregateKW []float64 `json:"aggregate_kw"`
		Objective   float64   `json:"objective"`
		MinVoltage  float64   `json:"min_voltage_pu"`
	} `json:"so_view"`
}

type soFile struct {
	Schema       string         `json:"schema"`
	Iterations   int            `json:"iterations"`
	Converged    bool           `json:"converged"`
	Rounds       int            `json:"rounds"`
	Resumed      bool           `json:"resumed"`
	RoundsResent int            `json:"rounds_resent"`
	Refused      map[string]int `json:"refused"`
	AggregateKW  []float64      `json:"so_view_aggregate_kw"`
}

type privacyFile struct {
	Schema      string   `json:"schema"`
	EVs         int      `json:"evs"`
	Slots       int      `json:"slots"`
	Adversaries []string `json:"adversaries"`
	Mechanisms  []struct {
		Mechanism   string             `json:"mechanism"`
		Params      map[string]float64 `json:"params"`
		Iterations  int                `json:"iterations"`
		Converged   bool               `json:"converged"`
		DeviationKW float64            `json:"deviation_kw"`
		Attacks     struct {
			RMSE        map[string]float64 `json:"rmse_kw"`
			PriorRMSE   float64            `json:"prior_rmse_kw"`
			BusMeanRMSE float64            `json:"bus_mean_rmse_kw"`
		} `json:"attacks"`
		BytesPerEVIteration float64 `json:"bytes_per_ev_iteration"`
	} `json:"mechanisms"`
}

type soViewFile struct {
	Schema    string                        `json:"schema"`
	Mechanism string                        `json:"mechanism"`
	Iteration int                           `json:"iteration"`
	Slots     int                           `json:"slots"`
	Known     map[string]map[string]float64 `json:"known"`
	BusSums   map[string][]float64          `json:"bus_sums_kw"`
	Reports   []soViewReport                `json:"reports"`
	Params    map[string]float64            `json:"params"`
}

type soViewReport struct {
	EV    string      `json:"ev"`
	Bus   string      `json:"bus"`
	KW    [][]float64 `json:"kw"`
	Words [][]uint64  `json:"words"`
	InSum *bool       `json:"in_sum"`
}

type marketFile struct {
	Schema   string `json:"schema"`
	Scenario string `json:"scenario"`
	Feeder   string `json:"feeder"`
	Day      struct {
		Rule   string `json:"rule"`
		Params struct {
			Chain  string `json:"chain"`
			FeePPM int64  `json:"fee_ppm"`
		} `json:"params"`
		Windows  []marketWindowFile `json:"windows"`
		Stations []json.RawMessage  `json:"stations"`
		GridFees int64              `json:"grid_fees"`
		Income   map[string]int64   `json:"income"`
		AppHash  string             `json:"app_hash"`
		Blocks   int64              `json:"blocks"`
	} `json:"day"`
}

type marketWindowFile struct {
	Index          int              `json:"index"`
	DemandWh       int64            `json:"demand_wh"`
	MarginWh       int64            `json:"margin_wh"`
	RightsBeforeWh int64            `json:"rights_before_wh"`
	CongestionFee  map[string]int64 `json:"congestion_fee"`
	Rights         []struct {
		Station   string `json:"station"`
		DemandWh  int64  `json:"demand_wh"`
		InitialWh int64  `json:"initial_wh"`
		FinalWh   int64  `json:"final_wh"`
	} `json:"rights"`
	Orders int   `json:"orders"`
	Bids   int   `json:"bids"`
	Asks   int   `json:"asks"`
	BidWh  int64 `json:"bid_wh"`
	AskWh  int64 `json:"ask_wh"`
	Book   []struct {
		Side  string `json:"side"`
		Price int64  `json:"price"`
		Wh    int64  `json:"wh"`
	} `json:"book"`
	Trades         int      `json:"trades"`
	FailedSecurity int      `json:"failed_security_checks"`
	VolumeWh       int64    `json:"volume_wh"`
	Price          int64    `json:"price"`
	P2PContracts   int      `json:"p2p_contracts"`
	P2PWh          int64    `json:"p2p_wh"`
	UnmetWh        int64    `json:"unmet_wh"`
	ExcessWh       int64    `json:"excess_wh"`
	RejectedTx     int      `json:"rejected_transactions"`
	CongestedBuses []string `json:"congested_buses"`
	Refused        []struct {
		Bus    string `json:"bus"`
		Wh     int64  `json:"wh"`
		Reason string `json:"reason"`
	} `json:"refused"`
	P2P []struct {
		Settled bool   `json:"settled"`
		Refused string `json:"refused"`
		Wh      int64  `json:"wh"`
	} `json:"p2p"`
	Income map[string]int64 `json:"income"`
}

type ldpBaselineFile struct {
	Schema   string `json:"schema"`
	Estimate struct {
		Mechanism        string        `json:"mechanism"`
		EpsilonPerReport float64       `json:"epsilon_per_report"`
		EpsilonPerDay    float64       `json:"epsilon_per_day"`
		MetersPerBus     int           `json:"meters_per_bus"`
		Meters           int           `json:"meters"`
		RMSE             float64       `json:"rmse"`
		TotalRMSE        float64       `json:"total_rmse"`
		Variance         [][][]float64 `json:"variance"`
	} `json:"estimate"`
}

type ldpFile struct {
	Schema   string    `json:"schema"`
	Meters   int       `json:"meters"`
	Epsilon  float64   `json:"epsilon"`
	Epsilons []float64 `json:"epsilons"`
	Trials   int       `json:"trials"`
	Mech     []struct {
		Name string `json:"name"`
		Sum  struct {
			Truth    float64    `json:"truth_kw"`
			Estimate float64    `json:"estimate_kw"`
			CI95     [2]float64 `json:"ci95_kw"`
		} `json:"sum"`
		Mean struct {
			Truth    float64    `json:"truth_kw"`
			Estimate float64    `json:"estimate_kw"`
			CI95     [2]float64 `json:"ci95_kw"`
		} `json:"mean"`
		Sweep []struct {
			Epsilon     float64 `json:"epsilon"`
			Theoretical float64 `json:"theoretical_rmse_mean_kw"`
			Empirical   float64 `json:"empirical_rmse_mean_kw"`
		} `json:"sweep"`
	} `json:"mechanisms"`
}

type homeFile struct {
	Schema     string   `json:"schema"`
	Homes      int      `json:"homes"`
	Slots      int      `json:"slots"`
	DT         float64  `json:"dt_hours"`
	Schedulers []string `json:"schedulers"`
	Totals     map[string]struct {
		Cost struct {
			Mean float64 `json:"mean"`
		} `json:"cost"`
		R2 struct {
			Mean float64 `json:"mean"`
		} `json:"r2"`
		F1 struct {
			Mean float64 `json:"mean"`
		} `json:"f1"`
		F1Prior struct {
			Mean float64 `json:"mean"`
		} `json:"f1_prior"`
	} `json:"totals"`
	HomeDays []struct {
		ID      int                 `json:"id"`
		LoadKW  []float64           `json:"load_kw"`
		Truth   map[string][][2]int `json:"truth"`
		Results map[string]struct {
			MeterKW  []float64                      `json:"meter_kw"`
			F1       float64                        `json:"f1"`
			F1By     string                         `json:"f1_by"`
			Detected map[string]map[string][][2]int `json:"detected"`
		} `json:"results"`
	} `json:"home_days"`
}
