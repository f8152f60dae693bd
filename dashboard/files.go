package dashboard

// The parts of gridveil's run files that the dashboard reads, as
// docs/FORMATS.md, LDP.md and HOME.md document them, where the dashboard
// reads less than the writers' types hold (fields the views do not use are
// left out: encoding/json skips them). so.json, convergence.json,
// privacy.json, so_view.json and market.json are read into the writers'
// own types (package day and runfile), so a field they add or rename
// reaches the dashboard with them.

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
