package ocpp

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// The OCPP 2.0.1 and 2.1 JSON schemas of the messages gridveil's CSMS
// handles, one file per request (.req) and response (.conf), as the Open
// Charge Alliance publishes them (schemas/README.md says where they come
// from): 2.0.1 in schemas/, 2.1 in schemas/v2.1/.
//
//go:embed schemas/*.json schemas/v2.1/*.json
var schemaFS embed.FS

// schemaDirs is where each subprotocol's schemas are.
var schemaDirs = map[string]string{Subprotocol: "schemas/", Subprotocol21: "schemas/v2.1/"}

// Actions are the OCPP 2.0.1 actions whose schemas are vendored: the ones
// the CSMS answers or sends. Any other action is answered NotImplemented.
var Actions = []string{
	"Authorize", "BootNotification", "ClearChargingProfile", "GetChargingProfiles",
	"GetCompositeSchedule", "Heartbeat", "MeterValues", "NotifyEVChargingNeeds", "ReportChargingProfiles",
	"RequestStartTransaction", "RequestStopTransaction", "SetChargingProfile", "StatusNotification",
	"TransactionEvent",
}

var (
	schemasOnce sync.Once
	schemas     map[string]*jsonschema.Schema // "PROTOCOL Action.req" / "PROTOCOL Action.conf"
	schemasErr  error
)

func loadSchemas() (map[string]*jsonschema.Schema, error) {
	schemasOnce.Do(func() {
		out := map[string]*jsonschema.Schema{}
		for proto, dir := range schemaDirs {
			// One compiler per version: the two editions' schemas share
			// definitions' names but not their content.
			c := jsonschema.NewCompiler()
			c.DefaultDraft(jsonschema.Draft7)
			// ocpp-rpc's strict mode (ajv-formats) asserts formats; so do
			// we, so that a timestamp one side accepts the other does not
			// refuse.
			c.AssertFormat()
			for _, a := range Actions {
				for _, kind := range []string{"req", "conf"} {
					name := a + "." + kind
					data, err := schemaFS.ReadFile(dir + name + ".json")
					if err != nil {
						schemasErr = fmt.Errorf("ocpp: %s schema %s is not vendored: %w", proto, name, err)
						return
					}
					doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
					if err != nil {
						schemasErr = fmt.Errorf("ocpp: %s schema %s: %w", proto, name, err)
						return
					}
					url := "urn:gridveil:" + proto + ":" + name
					if err := c.AddResource(url, doc); err != nil {
						schemasErr = fmt.Errorf("ocpp: %s schema %s: %w", proto, name, err)
						return
					}
					sch, err := c.Compile(url)
					if err != nil {
						schemasErr = fmt.Errorf("ocpp: %s schema %s: %w", proto, name, err)
						return
					}
					out[proto+" "+name] = sch
				}
			}
		}
		schemas = out
	})
	return schemas, schemasErr
}

// Validate checks payload, the JSON of a request (response false) or
// response (true) of action, against the OCPP 2.0.1 schema. A payload that
// does not conform gives an *RPCError with the error code OCPP-J assigns
// to the first violated keyword (the mapping ocpp-rpc uses, with the 2.0.1
// spelling OccurrenceConstraintViolation), naming the field.
func Validate(action string, response bool, payload []byte) error {
	return ValidateVersion(Subprotocol, action, response, payload)
}

// ValidateVersion is Validate against the schemas of subprotocol proto
// (Subprotocol or Subprotocol21).
func ValidateVersion(proto, action string, response bool, payload []byte) error {
	s, err := loadSchemas()
	if err != nil {
		return &RPCError{Code: ErrInternalError, Description: err.Error()}
	}
	kind := "req"
	if response {
		kind = "conf"
	}
	sch, ok := s[proto+" "+action+"."+kind]
	if !ok {
		return &RPCError{Code: ErrNotImplemented, Description: fmt.Sprintf("action %q is not implemented by this CSMS; it handles %s", action, strings.Join(Actions, ", "))}
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		return &RPCError{Code: ErrFormatViolation, Description: fmt.Sprintf("%s payload is not valid JSON: %v", action, err)}
	}
	err = sch.Validate(inst)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return &RPCError{Code: ErrFormatViolation, Description: fmt.Sprintf("%s: %v", action, err)}
	}
	leaf := ve
	for len(leaf.Causes) > 0 {
		leaf = leaf.Causes[0]
	}
	keyword := ""
	if kp := leaf.ErrorKind.KeywordPath(); len(kp) > 0 {
		keyword = kp[len(kp)-1]
	}
	code, ok := keywordCodes[keyword]
	if !ok {
		code = ErrFormatViolation
	}
	where := "/" + strings.Join(leaf.InstanceLocation, "/")
	return &RPCError{Code: code, Description: fmt.Sprintf("%s.%s at %s: %s (%s schema keyword %q)", action, kind, where, leaf.ErrorKind.LocalizedString(english), proto, keyword)}
}

var english = message.NewPrinter(language.English)

// keywordCodes maps a violated JSON-schema keyword to its OCPP-J error
// code, as ocpp-rpc's validator does.
var keywordCodes = map[string]string{
	"maximum":              ErrFormatViolation,
	"minimum":              ErrFormatViolation,
	"maxLength":            ErrFormatViolation,
	"minLength":            ErrFormatViolation,
	"format":               ErrFormatViolation,
	"enum":                 ErrFormatViolation,
	"exclusiveMaximum":     ErrOccurrenceConstraintViolation,
	"exclusiveMinimum":     ErrOccurrenceConstraintViolation,
	"multipleOf":           ErrOccurrenceConstraintViolation,
	"maxItems":             ErrOccurrenceConstraintViolation,
	"minItems":             ErrOccurrenceConstraintViolation,
	"maxProperties":        ErrOccurrenceConstraintViolation,
	"minProperties":        ErrOccurrenceConstraintViolation,
	"additionalItems":      ErrOccurrenceConstraintViolation,
	"required":             ErrOccurrenceConstraintViolation,
	"pattern":              ErrPropertyConstraintViolation,
	"propertyNames":        ErrPropertyConstraintViolation,
	"additionalProperties": ErrPropertyConstraintViolation,
	"type":                 ErrTypeConstraintViolation,
}
