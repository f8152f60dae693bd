package ocpp

// The parts of OCPP 2.0.1 messages the CSMS reads or writes. Payloads are
// validated against the schemas before they are decoded into these types
// and after they are encoded from them, so the types need not repeat the
// schemas' constraints.

// IDToken is an OCPP IdTokenType.
type IDToken struct {
	IDToken string `json:"idToken"`
	Type    string `json:"type"`
}

// IDTokenInfo is an OCPP IdTokenInfoType.
type IDTokenInfo struct {
	Status string `json:"status"`
}

// EVSE is an OCPP EVSEType.
type EVSE struct {
	ID          int  `json:"id"`
	ConnectorID *int `json:"connectorId,omitempty"`
}

// UnitOfMeasure is an OCPP UnitOfMeasureType.
type UnitOfMeasure struct {
	Unit       string `json:"unit,omitempty"`
	Multiplier int    `json:"multiplier,omitempty"`
}

// SampledValue is an OCPP SampledValueType.
type SampledValue struct {
	Value         float64        `json:"value"`
	Context       string         `json:"context,omitempty"`
	Measurand     string         `json:"measurand,omitempty"`
	Phase         string         `json:"phase,omitempty"`
	Location      string         `json:"location,omitempty"`
	UnitOfMeasure *UnitOfMeasure `json:"unitOfMeasure,omitempty"`
}

// MeterValue is an OCPP MeterValueType.
type MeterValue struct {
	Timestamp    string         `json:"timestamp"`
	SampledValue []SampledValue `json:"sampledValue"`
}

// TransactionInfo is an OCPP TransactionType.
type TransactionInfo struct {
	TransactionID string `json:"transactionId"`
	ChargingState string `json:"chargingState,omitempty"`
	StoppedReason string `json:"stoppedReason,omitempty"`
}

// TransactionEventRequest is an OCPP TransactionEventRequest.
type TransactionEventRequest struct {
	EventType       string          `json:"eventType"` // Started, Updated, Ended
	Timestamp       string          `json:"timestamp"`
	TriggerReason   string          `json:"triggerReason"`
	SeqNo           int             `json:"seqNo"`
	TransactionInfo TransactionInfo `json:"transactionInfo"`
	EVSE            *EVSE           `json:"evse,omitempty"`
	IDToken         *IDToken        `json:"idToken,omitempty"`
	MeterValue      []MeterValue    `json:"meterValue,omitempty"`
}

// MeterValuesRequest is an OCPP MeterValuesRequest.
type MeterValuesRequest struct {
	EVSEID     int          `json:"evseId"`
	MeterValue []MeterValue `json:"meterValue"`
}

// ChargingSchedulePeriod is an OCPP ChargingSchedulePeriodType. The last
// three fields are OCPP 2.1's (V2X) and never sent on 2.0.1.
type ChargingSchedulePeriod struct {
	StartPeriod int     `json:"startPeriod"` // seconds from the start of the schedule
	Limit       float64 `json:"limit"`       // in the schedule's chargingRateUnit, at most one decimal
	// OperationMode (2.1): ChargingOnly, or CentralSetpoint for a
	// discharge the CSMS sets.
	OperationMode string `json:"operationMode,omitempty"`
	// Setpoint (2.1) is the power the EV follows, negative to discharge.
	Setpoint *float64 `json:"setpoint,omitempty"`
	// DischargeLimit (2.1) bounds the discharge: zero or negative.
	DischargeLimit *float64 `json:"dischargeLimit,omitempty"`
}

// ChargingSchedule is an OCPP ChargingScheduleType.
type ChargingSchedule struct {
	ID                     int                      `json:"id"`
	StartSchedule          string                   `json:"startSchedule,omitempty"`
	Duration               int                      `json:"duration,omitempty"`
	ChargingRateUnit       string                   `json:"chargingRateUnit"`
	ChargingSchedulePeriod []ChargingSchedulePeriod `json:"chargingSchedulePeriod"`
}

// ChargingProfile is an OCPP ChargingProfileType.
type ChargingProfile struct {
	ID                     int                `json:"id"`
	StackLevel             int                `json:"stackLevel"`
	ChargingProfilePurpose string             `json:"chargingProfilePurpose"`
	ChargingProfileKind    string             `json:"chargingProfileKind"`
	TransactionID          string             `json:"transactionId,omitempty"`
	ChargingSchedule       []ChargingSchedule `json:"chargingSchedule"`
}

// SetChargingProfileRequest is an OCPP SetChargingProfileRequest.
type SetChargingProfileRequest struct {
	EVSEID          int             `json:"evseId"`
	ChargingProfile ChargingProfile `json:"chargingProfile"`
}

// StatusResponse is the response of the calls that answer with a status
// (SetChargingProfile, ClearChargingProfile, GetChargingProfiles,
// GetCompositeSchedule, RequestStart/StopTransaction).
type StatusResponse struct {
	Status     string `json:"status"`
	StatusInfo *struct {
		ReasonCode     string `json:"reasonCode"`
		AdditionalInfo string `json:"additionalInfo,omitempty"`
	} `json:"statusInfo,omitempty"`
}
