package dashboard

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"

	"github.com/gridveil/gridveil/auth/authnet"
)

// AuthView is /api/v1/auth: the anonymous events the authentication
// services recorded (auth-events.jsonl of each CA and LAG data directory,
// docs/PLATFORM.md), counted. The events name no vehicle, session or
// credential, so nothing on the view can link two sessions.
type AuthView struct {
	Header
	// Admitted counts sessions a LAG granted after a full authentication,
	// Resumed those it granted on a resumption ticket.
	Admitted int `json:"admitted"`
	Resumed  int `json:"resumed"`
	// Refused counts refusals by reason (authnet.RefusalReasons), from
	// the LAGs and the CA.
	Refused     map[string]int `json:"refused"`
	Revocations int            `json:"revocations"`
	// Batches are the LAGs' batch verifications of credentials.
	Batches BatchSummary `json:"batches"`
	// Parties is each events file read (relative to the run directory)
	// with its number of events.
	Parties map[string]int `json:"parties"`
}

// BatchSummary sums the verified batches.
type BatchSummary struct {
	Count    int `json:"count"`
	Requests int `json:"requests"`
	// MaxSize is the largest batch; the verification times are wall
	// times on the LAG's cores, in seconds.
	MaxSize            int     `json:"max_size"`
	VerifySecondsTotal float64 `json:"verify_seconds_total"`
	VerifySecondsMax   float64 `json:"verify_seconds_max"`
	// Sizes and VerifySeconds are each batch's, in order (at most
	// maxBatchesShown, the latest).
	Sizes         []int     `json:"sizes"`
	VerifySeconds []float64 `json:"verify_seconds"`
}

// maxBatchesShown bounds the per-batch series sent to the page.
const maxBatchesShown = 2000

// authEventFiles are where a run keeps its parties' events: a party's own
// data directory given as the run, the data directory of gridveil serve
// (ca/, lag-ID/), or gridveil up's parties/.
var authEventFiles = []string{authnet.AuthEventsFile, "*/" + authnet.AuthEventsFile, "parties/*/" + authnet.AuthEventsFile}

// Auth builds the authentication view.
func (r *Run) Auth() AuthView {
	v := AuthView{Header: newHeader("gridveil/dashboard-auth/v1"), Refused: map[string]int{}, Parties: map[string]int{},
		Batches: BatchSummary{Sizes: []int{}, VerifySeconds: []float64{}}}
	var files []string
	if r.dir != "" {
		for _, pat := range authEventFiles {
			m, _ := filepath.Glob(filepath.Join(r.dir, pat)) // the patterns are well formed
			files = append(files, m...)
		}
	}
	sort.Strings(files)
	if len(files) == 0 {
		v.Files = append(v.Files, FileStatus{Name: authnet.AuthEventsFile})
		v.Absent = append(v.Absent, "authentication events: this run has no auth-events.jsonl (written by gridveil serve --role ca and --role lag in their data directories; give --run the --data directory; gridveil up runs no CA or LAG yet)")
		return v
	}
	for _, path := range files {
		rel, _ := filepath.Rel(r.dir, path)
		st := FileStatus{Name: rel, Present: true, Schema: authnet.AuthEventSchema}
		n, torn, err := readAuthFile(path, &v)
		if err != nil {
			st.Error = fmt.Sprintf("%s: %v; it is written by gridveil serve --role ca or lag: move the damaged file aside", rel, err)
			v.Absent = append(v.Absent, st.Error)
		}
		if torn > 0 {
			v.Absent = append(v.Absent, fmt.Sprintf("%s ends with a line cut short (a crash while writing); it is not counted", rel))
		}
		v.Files = append(v.Files, st)
		v.Parties[rel] = n
	}
	return v
}

func readAuthFile(path string, v *AuthView) (n, torn int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	b := &v.Batches
	return authnet.ReadAuthEvents(f, func(e authnet.AuthEvent) {
		switch e.Kind {
		case authnet.EventAdmitted:
			v.Admitted++
		case authnet.EventResumed:
			v.Resumed++
		case authnet.EventRefused:
			v.Refused[e.Reason]++
		case authnet.EventRevoked:
			v.Revocations++
		case authnet.EventBatchVerified:
			b.Count++
			b.Requests += e.Size
			b.MaxSize = max(b.MaxSize, e.Size)
			b.VerifySecondsTotal += e.VerifySeconds
			b.VerifySecondsMax = math.Max(b.VerifySecondsMax, e.VerifySeconds)
			b.Sizes = append(b.Sizes, e.Size)
			b.VerifySeconds = append(b.VerifySeconds, e.VerifySeconds)
			if len(b.Sizes) > maxBatchesShown {
				b.Sizes, b.VerifySeconds = b.Sizes[1:], b.VerifySeconds[1:]
			}
		}
	})
}
