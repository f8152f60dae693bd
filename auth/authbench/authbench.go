// Package authbench measures gridveil's anonymous credentials on the
// machine it runs on and compares them in one table (docs/ARCHITECTURE.md C6):
// anonymity set, who can trace, sizes, the vehicle's signing cost, the
// verifier's cost one by one and in a batch, and what one LAG spends to
// admit a vehicle end to end (Noise handshake, credential checks, batch
// verification, the permit's delivery), from which the time for a thousand
// vehicles follows.
//
// It drives the parties of package auth in one process through their
// public API only, so the figures are those of the code the services run.
// Timings are wall-clock on one goroutine: per core.
package authbench

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"runtime"
	"text/tabwriter"
	"time"

	"github.com/flynn/noise"

	"github.com/gridveil/gridveil/auth"
	"github.com/gridveil/gridveil/auth/lsag"
	"github.com/gridveil/gridveil/auth/pseudonym"
)

// Config says what to measure.
type Config struct {
	// Vehicles admitted at one LAG for the end-to-end figure of the
	// pseudonym scheme (LSAG rows use a tenth, at least 20, rounded up to
	// a whole number of rings).
	Vehicles int
	// Rings are the LSAG ring sizes to compare.
	Rings []int
	// MinTime is how long each micro-benchmark runs at least.
	MinTime time.Duration
}

// Row is one credential scheme's line of the table.
type Row struct {
	Scheme       string
	Anonymity    string
	Tracing      string
	Linkable     string
	CredBytes    int     // what the vehicle shows besides its signature
	SigBytes     int     // the signature
	SignUS       float64 // vehicle: one authentication signature
	VerifyUS     float64 // verifier: one credential, one by one
	BatchUS      float64 // verifier: per credential in a batch of 1000 (0: no batch)
	LAGUS        float64 // one LAG, end to end, per vehicle
	CAUS         float64 // the CA's check, tracing and permit, per vehicle
	Per1000S     float64 // LAGUS for 1000 vehicles, seconds
	Implemented  bool
	MeasuredWith int // vehicles in the end-to-end run
}

// Result is the measured table.
type Result struct {
	Machine string
	Rows    []Row
}

// Run measures every scheme.
func Run(cfg Config, progress io.Writer) (*Result, error) {
	if cfg.Vehicles <= 0 {
		cfg.Vehicles = 1000
	}
	if len(cfg.Rings) == 0 {
		cfg.Rings = []int{16, 64, 100}
	}
	if cfg.MinTime <= 0 {
		cfg.MinTime = 300 * time.Millisecond
	}
	if progress == nil {
		progress = io.Discard
	}
	res := &Result{Machine: fmt.Sprintf("%d CPUs, GOMAXPROCS %d, %s/%s, %s", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, runtime.Version())}

	fmt.Fprintln(progress, "measuring pseudonym certificates ...")
	row, err := pseudonymRow(cfg)
	if err != nil {
		return nil, err
	}
	res.Rows = append(res.Rows, row)
	for _, k := range cfg.Rings {
		fmt.Fprintf(progress, "measuring LSAG, ring of %d ...\n", k)
		row, err := lsagRow(cfg, k)
		if err != nil {
			return nil, err
		}
		res.Rows = append(res.Rows, row)
	}
	res.Rows = append(res.Rows, Row{Scheme: "group signature", Anonymity: "whole group", Tracing: "CA (opener key)", Linkable: "no"})
	return res, nil
}

// timeIt runs f until minTime has passed and returns microseconds per call.
func timeIt(minTime time.Duration, f func() error) (float64, error) {
	n := 0
	start := time.Now()
	for time.Since(start) < minTime || n < 3 {
		if err := f(); err != nil {
			return 0, err
		}
		n++
	}
	return float64(time.Since(start).Microseconds()) / float64(n), nil
}

var msg = make([]byte, 200) // an authentication statement's length

func pseudonymRow(cfg Config) (Row, error) {
	r := Row{Scheme: "pseudonym certificate", Anonymity: "whole group", Tracing: "CA (HPKE tag)", Linkable: "no (one per session)", Implemented: true}
	keys, err := auth.GenerateCAKeys()
	if err != nil {
		return r, err
	}
	ca, err := auth.NewCA(keys, auth.CAConfig{})
	if err != nil {
		return r, err
	}
	tr, err := traceKey(ca.Public())
	if err != nil {
		return r, err
	}
	const n = 1000
	var entries []pseudonym.Entry
	var privs []ed25519.PrivateKey
	var certs []*pseudonym.Cert
	now := time.Now()
	caKey := keys.Public().SignKey
	for i := 0; i < n; i++ {
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		c, err := pseudonym.Issue(keys.Sign, tr, fmt.Sprintf("VIN-%05d", i), "utility-a", pub, now, now.Add(time.Hour))
		if err != nil {
			return r, err
		}
		privs, certs = append(privs, priv), append(certs, c)
		entries = append(entries, pseudonym.Entry{PublicKey: caKey[:], Message: c.SignedMessage(), Signature: c.Sig[:]},
			pseudonym.Entry{PublicKey: pub, Message: msg, Signature: ed25519.Sign(priv, msg)})
	}
	r.CredBytes, r.SigBytes = len(certs[0].Marshal()), ed25519.SignatureSize
	if r.SignUS, err = timeIt(cfg.MinTime, func() error { ed25519.Sign(privs[0], msg); return nil }); err != nil {
		return r, err
	}
	i := 0
	if r.VerifyUS, err = timeIt(cfg.MinTime, func() error {
		e, f := entries[2*i], entries[2*i+1]
		i = (i + 1) % n
		if !ed25519.Verify(e.PublicKey, e.Message, e.Signature) || !ed25519.Verify(f.PublicKey, f.Message, f.Signature) {
			return errors.New("invalid")
		}
		return nil
	}); err != nil {
		return r, err
	}
	batch, err := timeIt(cfg.MinTime, func() error {
		if !pseudonym.VerifyBatch(entries) {
			return errors.New("invalid batch")
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	r.BatchUS = batch / n
	r.MeasuredWith = cfg.Vehicles
	r.LAGUS, r.CAUS, err = admit(auth.SchemePseudonym, cfg.Vehicles, 0)
	r.Per1000S = r.LAGUS * 1000 / 1e6
	return r, err
}

func lsagRow(cfg Config, k int) (Row, error) {
	r := Row{Scheme: fmt.Sprintf("LSAG ring of %d", k), Anonymity: fmt.Sprintf("%d vehicles", k), Tracing: "CA (link base secret)", Linkable: "same LAG and hour", Implemented: true}
	keys := make([][32]byte, k)
	var signer *lsag.PrivateKey
	for i := range keys {
		key, err := lsag.GenerateKey()
		if err != nil {
			return r, err
		}
		keys[i] = key.Public()
		if i == k/2 {
			signer = key
		}
	}
	ring, err := lsag.NewRing(keys)
	if err != nil {
		return r, err
	}
	_, base := lsag.DeriveBase([]byte("bench"), []byte("scope"))
	var sig *lsag.Signature
	if r.SignUS, err = timeIt(cfg.MinTime, func() error {
		sig, err = lsag.Sign(msg, ring, k/2, signer, base)
		return err
	}); err != nil {
		return r, err
	}
	if r.VerifyUS, err = timeIt(cfg.MinTime, func() error { return lsag.Verify(msg, ring, base, sig) }); err != nil {
		return r, err
	}
	r.CredBytes = 4 + len("utility-a") + 4 + 4*k
	r.SigBytes = lsag.Size(k)
	// A whole number of rings: vehicles draw their ring from buckets of k
	// members, and a partial last bucket joins the one before it, which
	// would give some vehicles a larger ring than the row says.
	r.MeasuredWith = (max(20, cfg.Vehicles/10) + k - 1) / k * k
	r.LAGUS, r.CAUS, err = admit(auth.SchemeLSAG, r.MeasuredWith, k)
	r.Per1000S = r.LAGUS * 1000 / 1e6
	return r, err
}

// admit runs count vehicles through one LAG and returns the LAG's and the
// CA's time per vehicle in microseconds.
func admit(sc auth.Scheme, count, ring int) (lagUS, caUS float64, err error) {
	now := time.Now()
	keys, err := auth.GenerateCAKeys()
	if err != nil {
		return 0, 0, err
	}
	ca, err := auth.NewCA(keys, auth.CAConfig{})
	if err != nil {
		return 0, 0, err
	}
	nk, _ := noise.DH25519.GenerateKeypair(rand.Reader)
	spub, sk, _ := ed25519.GenerateKey(rand.Reader)
	cert, err := ca.IssueLAGCert(now, "lag-1", "utility-a", [32]byte(nk.Public), [32]byte(spub))
	if err != nil {
		return 0, 0, err
	}
	lag, err := auth.NewLAG(auth.LAGConfig{Cert: *cert, NoiseKey: nk, SignKey: sk, CA: ca.Public()}, now)
	if err != nil {
		return 0, 0, err
	}
	link := ca.Open()
	toCA := func(frames []auth.Frame) ([]auth.Frame, error) {
		var back []auth.Frame
		for _, f := range frames {
			if f.To != auth.ToCA {
				continue
			}
			out, err := ca.Receive(now, link, f.Data)
			if err != nil {
				return nil, err
			}
			back = append(back, out.Frames...)
		}
		return back, nil
	}
	first, err := lag.ConnectCA()
	if err != nil {
		return 0, 0, err
	}
	frames := []auth.Frame{{To: auth.ToCA, Data: first}}
	// enrol runs one enrolment; pushes of new ring members go to the
	// linked LAG.
	enrol := func(bv *auth.BV, n int) error {
		var cred [32]byte
		if v, _ := ca.Vehicle(bv.RealID); v.RealID == "" { // a new vehicle: the operator issues its credential
			if cred, _, err = ca.IssueCredential(now, auth.CredentialVehicle, bv.RealID); err != nil {
				return err
			}
		}
		e, f, err := bv.Enrol(cred, n)
		if err != nil {
			return err
		}
		id := ca.Open()
		defer ca.Close(id)
		for f != nil {
			out, err := ca.Receive(now, id, f)
			if err != nil {
				return err
			}
			f = nil
			for _, o := range out.Frames {
				if o.To == link {
					lo, err := lag.ReceiveCA(now, o.Data)
					if err != nil {
						return err
					}
					frames = append(frames, lo.Frames...)
				} else if o.To == id {
					if f, err = e.Receive(o.Data); err != nil {
						return err
					}
				}
			}
		}
		return nil
	}
	var bvs []*auth.BV
	for i := 0; i < count || len(frames) > 0; {
		if len(frames) > 0 {
			back, err := toCA(frames)
			if err != nil {
				return 0, 0, err
			}
			frames = nil
			for _, f := range back {
				out, err := lag.ReceiveCA(now, f.Data)
				if err != nil {
					return 0, 0, err
				}
				frames = append(frames, out.Frames...)
			}
			continue
		}
		bv, err := auth.NewBV(fmt.Sprintf("VIN-%05d", i), "utility-a", ca.Public())
		if err != nil {
			return 0, 0, err
		}
		if err := enrol(bv, 1); err != nil {
			return 0, 0, err
		}
		bvs = append(bvs, bv)
		i++
	}
	// Each vehicle's copy of the group list must hold the whole group, or
	// the first vehicles would draw smaller rings.
	if sc == auth.SchemeLSAG {
		for _, bv := range bvs {
			if err := enrol(bv, 0); err != nil {
				return 0, 0, err
			}
		}
	}
	var lagTime, caTime time.Duration
	timed := func(d *time.Duration, f func()) {
		t := time.Now()
		f()
		*d += time.Since(t)
	}
	var ids []auth.ConnID
	var pending [][]byte
	opts := auth.SessionOptions{Schemes: []auth.Scheme{sc}, RingSize: ring}
	for _, bv := range bvs {
		s := bv.NewSession(opts)
		var id auth.ConnID
		var out auth.Output
		var err error
		timed(&lagTime, func() { id, out, err = lag.Open(now) })
		if err != nil {
			return 0, 0, err
		}
		f, err := s.Receive(now, out.Frames[0].Data)
		if err != nil {
			return 0, 0, err
		}
		timed(&lagTime, func() { out, err = lag.Receive(now, id, f[0]) })
		if err != nil {
			return 0, 0, err
		}
		if f, err = s.Receive(now, out.Frames[0].Data); err != nil {
			return 0, 0, err
		}
		ids, pending = append(ids, id), append(pending, f[0])
	}
	for i, id := range ids {
		timed(&lagTime, func() { _, err = lag.Receive(now, id, pending[i]) })
		if err != nil {
			return 0, 0, err
		}
	}
	var out auth.Output
	timed(&lagTime, func() { out = lag.Flush(now) })
	var back []auth.Frame
	timed(&caTime, func() { back, err = toCA(out.Frames) })
	if err != nil {
		return 0, 0, err
	}
	if len(back) != 1 {
		return 0, 0, fmt.Errorf("CA answered with %d frames", len(back))
	}
	timed(&lagTime, func() { out, err = lag.ReceiveCA(now, back[0].Data) })
	if err != nil {
		return 0, 0, err
	}
	if len(out.Frames) != count {
		return 0, 0, fmt.Errorf("%d permits for %d vehicles", len(out.Frames), count)
	}
	return float64(lagTime.Microseconds()) / float64(count), float64(caTime.Microseconds()) / float64(count), nil
}

// Print writes the table.
func (r *Result) Print(w io.Writer) error {
	fmt.Fprintf(w, "machine: %s; one goroutine, so figures are per core\n\n", r.Machine)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scheme\tanonymity set\twho traces\tlinkable\tcred B\tsig B\tsign µs\tverify µs\tbatch µs/cred\tLAG µs/vehicle\tCA µs/vehicle\t1000 at one LAG\t")
	for _, row := range r.Rows {
		if !row.Implemented {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t-\tnot implemented\t\n", row.Scheme, row.Anonymity, row.Tracing, row.Linkable)
			continue
		}
		batch := "none"
		if row.BatchUS > 0 {
			batch = fmt.Sprintf("%.1f", row.BatchUS)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%.1f\t%.1f\t%s\t%.0f\t%.0f\t%.2f s\t\n", row.Scheme, row.Anonymity, row.Tracing, row.Linkable,
			row.CredBytes, row.SigBytes, row.SignUS, row.VerifyUS, batch, row.LAGUS, row.CAUS, row.Per1000S)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nverify: one credential checked alone (pseudonym: the CA's certificate signature and the session signature).")
	fmt.Fprintln(w, "batch: per credential in one randomized Ed25519 batch of 1000 credentials (2000 signatures).")
	fmt.Fprintln(w, "LAG: the LAG's own time to admit one vehicle end to end: Noise NK handshake, credential checks,")
	fmt.Fprintln(w, "batch verification of all gathered vehicles at once, the permit's delivery (vehicles' and CA's work excluded).")
	for _, row := range r.Rows {
		if row.Implemented {
			fmt.Fprintf(w, "%s: end-to-end figures from %d vehicles at one LAG.\n", row.Scheme, row.MeasuredWith)
		}
	}
	return nil
}

func traceKey(p auth.CAPublic) (hpke.PublicKey, error) {
	k, err := ecdh.X25519().NewPublicKey(p.TraceKey[:])
	if err != nil {
		return nil, err
	}
	return hpke.NewDHKEMPublicKey(k)
}
