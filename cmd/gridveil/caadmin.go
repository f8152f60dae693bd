package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/flynn/noise"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gridveil/gridveil/auth"
	"github.com/gridveil/gridveil/auth/authnet"
)

// caAdminOptions locate a running CA and the operator's admin key.
type caAdminOptions struct {
	data     string
	caAddr   string
	caPublic string
	adminKey string
	timeout  time.Duration
}

func (o *caAdminOptions) flags(fl *pflag.FlagSet) {
	fl.StringVar(&o.data, "data", "gridveil-data", "data directory root (the CA's files are in <data>/ca)")
	fl.StringVar(&o.caAddr, "ca-addr", "", "the CA's address (default: <data>/ca/addr if present, else "+defaultCAAddr+")")
	fl.StringVar(&o.caPublic, "ca-public", "", "the CA's public.key (default <data>/ca/public.key)")
	fl.StringVar(&o.adminKey, "admin-key", "", "the operator's admin key (default <data>/ca/admin.key, written by serve --role ca)")
	fl.DurationVar(&o.timeout, "timeout", 10*time.Second, "bound on each request to the CA")
}

// resolve finds the CA's address and public keys and reads the admin key.
func (o *caAdminOptions) resolve() (string, auth.CAPublic, noise.DHKey, error) {
	addr, pub, _, _, err := caFiles(o.data, o.caAddr, o.caPublic, filepath.Join(o.data, "ca", "enrol.token"))
	if err != nil {
		return "", pub, noise.DHKey{}, err
	}
	path := o.adminKey
	if path == "" {
		path = filepath.Join(o.data, "ca", authnet.AdminKeyFile)
	}
	key, err := authnet.ReadAdminKey(path)
	if err != nil {
		return "", pub, key, fmt.Errorf("the admin key: %w (gridveil serve --role ca writes it to its data directory; give --admin-key)", err)
	}
	return addr, pub, key, nil
}

// ask runs one administration request against the CA.
func (o *caAdminOptions) ask(ctx context.Context, addr string, a *auth.Admin, first []byte) (string, error) {
	c, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	return authnet.RunAdmin(c, addr, a, first)
}

func newCACmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Administer a running central authority: issue enrolment credentials, trace a session, revoke a vehicle",
		Long: `ca administers the central authority that gridveil serve --role ca runs
(docs/ARCHITECTURE.md C6, docs/AUTH.md). It does not open the CA's data directory:
it asks the running CA over the CA's own listener, in a Noise IK session
authenticated by the operator's admin key (<data>/ca/admin.key, mode 0600,
created by the CA on first start). The CA refuses any other key, LAGs'
included, so a LAG cannot trace; the CA remains the only process that holds
its secrets and writes its state. The CA must be running.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newCAIssueCmd(), newCARevokeCredentialCmd(), newCATraceCmd(), newCARevokeCmd())
	return cmd
}

func newCATraceCmd() *cobra.Command {
	o := &caAdminOptions{}
	var evidence, lagID string
	var all bool
	cmd := &cobra.Command{
		Use:   "trace [SESSION...]",
		Short: "Print the real identity behind sessions a LAG recorded",
		Long: `trace reads a LAG's evidence file (every session the LAG admitted, one
line each: <data>/lag-<id>/evidence.jsonl) and asks the running CA to trace
the sessions named by a hex prefix of their binding (at least 4 digits: the
"session" field of the file, or the binding in the LAG's output), or every
session with --all. The CA checks each record (the credential is its own
and the vehicle's signature covers the session at that LAG) before it
opens the pseudonym's tracing tag or resolves the LSAG link tag. A resumed
session is traced through the full authentication it descends from, whose
record must be in the same file.`,
		Example: `  gridveil ca trace 9127dee1
  gridveil ca trace --evidence gridveil-data/lag-lag-2/evidence.jsonl --all`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				return errors.New("name the sessions to trace (hex prefixes of their binding), or give --all")
			}
			if evidence == "" {
				evidence = filepath.Join(o.data, "lag-"+lagID, authnet.EvidenceFile)
			}
			recs, err := authnet.ReadEvidence(evidence)
			if err != nil {
				return err
			}
			chosen, err := chooseSessions(recs, args, evidence)
			if err != nil {
				return err
			}
			addr, pub, key, err := o.resolve()
			if err != nil {
				return err
			}
			return traceAll(cmd.Context(), cmd.OutOrStdout(), o, addr, pub, key, recs, chosen)
		},
	}
	o.flags(cmd.Flags())
	cmd.Flags().StringVar(&evidence, "evidence", "", "the LAG's evidence file (default <data>/lag-<lag-id>/evidence.jsonl)")
	cmd.Flags().StringVar(&lagID, "lag-id", "lag-1", "the LAG whose evidence file to read, when --evidence is not given")
	cmd.Flags().BoolVar(&all, "all", false, "trace every session of the file")
	return cmd
}

// chooseSessions picks the records named by hex prefixes of their binding
// (each must name exactly one), or all of them.
func chooseSessions(recs []*auth.Evidence, prefixes []string, file string) ([]*auth.Evidence, error) {
	if len(recs) == 0 {
		return nil, fmt.Errorf("%s holds no session", file)
	}
	if len(prefixes) == 0 {
		return recs, nil
	}
	var out []*auth.Evidence
	for _, p := range prefixes {
		p = strings.ToLower(strings.TrimSpace(p))
		if len(p) < 4 || len(p) > 64 || strings.Trim(p, "0123456789abcdef") != "" {
			return nil, fmt.Errorf("session %q: give 4 to 64 hex digits of its binding", p)
		}
		var match []*auth.Evidence
		for _, e := range recs {
			if strings.HasPrefix(hex.EncodeToString(e.Binding[:]), p) {
				match = append(match, e)
			}
		}
		switch len(match) {
		case 0:
			return nil, fmt.Errorf("no session in %s starts with %s", file, p)
		case 1:
			out = append(out, match[0])
		default:
			return nil, fmt.Errorf("%d sessions in %s start with %s: give more digits", len(match), file, p)
		}
	}
	return out, nil
}

// traceAll asks the CA to trace each chosen record, following resumptions
// to their origin in the same file.
func traceAll(ctx context.Context, w io.Writer, o *caAdminOptions, addr string, pub auth.CAPublic, key noise.DHKey, recs, chosen []*auth.Evidence) error {
	if ctx == nil {
		ctx = context.Background()
	}
	full := map[[32]byte]*auth.Evidence{}
	for _, e := range recs {
		if !e.Resumed {
			full[e.Binding] = e
		}
	}
	failed := 0
	var last error
	for _, e := range chosen {
		what := fmt.Sprintf("session %x at %s, %s, %s", e.Binding[:8], e.LAGID, time.Unix(e.Time, 0).UTC().Format(time.RFC3339), e.Scheme)
		target := e
		if e.Resumed {
			what += fmt.Sprintf(", resumed from %x", e.Origin[:8])
			if target = full[e.Origin]; target == nil {
				last = fmt.Errorf("%s: the record of session %x, which it resumed, is not in the file", what, e.Origin[:8])
				fmt.Fprintln(w, last)
				failed++
				continue
			}
		}
		a, first, err := auth.NewAdminTrace(pub, key, target)
		var id string
		if err == nil {
			id, err = o.ask(ctx, addr, a, first)
		}
		if err != nil {
			if errors.Is(err, authnet.ErrCADown) {
				return err // nothing more will work
			}
			last = fmt.Errorf("%s: %w", what, err)
			fmt.Fprintln(w, last)
			failed++
			continue
		}
		fmt.Fprintf(w, "%s: %s\n", what, id)
	}
	switch {
	case failed == 0:
		return nil
	case len(chosen) == 1:
		return last
	}
	return &exitError{code: 2, err: fmt.Errorf("%d of %d sessions not traced", failed, len(chosen))}
}

func newCARevokeCmd() *cobra.Command {
	o := &caAdminOptions{}
	cmd := &cobra.Command{
		Use:   "revoke VEHICLE...",
		Short: "Revoke vehicles by their real identity",
		Long: `revoke asks the running CA to revoke each vehicle named by its real
identity (as enrolled: the vehicle's identifier, e.g. BV-001). The CA puts
the vehicle's unexpired pseudonyms on its revocation list, marks its LSAG
key revoked, ends its active sessions and pushes the new list to every
linked LAG at once; from then on every LAG refuses the vehicle by itself,
its resumption tickets included (other vehicles' tickets stay valid), and
the CA refuses to enrol it again. A LAG that is not linked gets the list
when it links. The next gridveil agent bv shows it: the revoked vehicle is
refused at the LAG, the others resume with their tickets.`,
		Example: `  gridveil ca revoke BV-002`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr, pub, key, err := o.resolve()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			for _, id := range args {
				a, first, err := auth.NewAdminRevoke(pub, key, id)
				if err != nil {
					return fmt.Errorf("vehicle %q: %w", id, err)
				}
				res, err := o.ask(ctx, addr, a, first)
				if err != nil {
					return fmt.Errorf("revoking %q: %w", id, err)
				}
				fmt.Fprintln(cmd.OutOrStdout(), res)
			}
			return nil
		},
	}
	o.flags(cmd.Flags())
	return cmd
}

// credentialNames are the names an issue or revoke-credential command
// acts on: its arguments, or PREFIX-001.. PREFIX-N with --count.
func credentialNames(args []string, count int, prefix string) ([]string, error) {
	switch {
	case count < 0 || count > 100000:
		return nil, fmt.Errorf("--count %d: 0..100000", count)
	case count > 0 && len(args) > 1:
		return nil, errors.New("name the parties, or give --count (and --prefix), not both")
	case count == 0 && len(args) < 2:
		return nil, errors.New("name at least one party after the kind (vehicle or lag), or give --count")
	}
	names := args[1:]
	for i := 1; i <= count; i++ {
		names = append(names, fmt.Sprintf("%s-%03d", prefix, i))
	}
	return names, nil
}

func newCAIssueCmd() *cobra.Command {
	o := &caAdminOptions{}
	var out, prefix string
	var count int
	cmd := &cobra.Command{
		Use:   "issue {vehicle|lag} [NAME...]",
		Short: "Issue enrolment credentials: one per vehicle or LAG, by name",
		Long: `issue has the running CA issue an enrolment credential for each vehicle
(by its real identity, e.g. BV-001) or LAG (by its identifier, e.g. lag-1)
and writes each to --out (default <data>/credentials) as vehicle-NAME.cred or
lag-NAME.cred (mode 0600), for the party to enrol with: gridveil agent bv and
gridveil serve --role lag read them from there. The CA keeps only a hash of
each credential, and answers once it is on its disk.

A credential enrols the party it names, once: that first enrolment binds the
name to the party's own keys, which authenticate its later refills and
renewals. It does not enrol another vehicle, a LAG with a vehicle's
credential, or anyone a second time. Issuing again for a name whose
credential is unused replaces it (the old one is revoked); an enrolled
name needs none, and is refused. To take back an unused credential:
gridveil ca revoke-credential.`,
		Example: `  gridveil ca issue lag lag-1
  gridveil ca issue vehicle --count 5
  gridveil ca issue vehicle BV-101 BV-102 --out /media/usb`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, err := auth.ParseCredentialKind(args[0])
			if err != nil {
				return err
			}
			names, err := credentialNames(args, count, prefix)
			if err != nil {
				return err
			}
			addr, pub, key, err := o.resolve()
			if err != nil {
				return err
			}
			if out == "" {
				out = filepath.Join(o.data, "credentials")
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			for _, name := range names {
				a, first, err := auth.NewAdminIssue(pub, key, kind, name)
				if err != nil {
					return fmt.Errorf("%s %q: %w", kind, name, err)
				}
				res, err := o.ask(ctx, addr, a, first)
				if err != nil {
					return fmt.Errorf("issuing a credential for %s %q: %w", kind, name, err)
				}
				b, err := hex.DecodeString(res)
				if err != nil || len(b) != 32 {
					return fmt.Errorf("the CA answered %q for %s %q: not a credential", res, kind, name)
				}
				file, err := authnet.WriteCredential(out, kind, name, [32]byte(b))
				if err != nil {
					return fmt.Errorf("the CA issued a credential for %s %q, but it could not be written (issue it again to replace it): %w", kind, name, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "enrolment credential for %s %q: %s\n", kind, name, file)
			}
			return nil
		},
	}
	o.flags(cmd.Flags())
	cmd.Flags().StringVar(&out, "out", "", "folder to write the credentials to (default <data>/credentials)")
	cmd.Flags().IntVar(&count, "count", 0, "issue for PREFIX-001 .. PREFIX-N instead of naming them (the names gridveil agent bv uses)")
	cmd.Flags().StringVar(&prefix, "prefix", "BV", "with --count: the names' prefix")
	return cmd
}

func newCARevokeCredentialCmd() *cobra.Command {
	o := &caAdminOptions{}
	var prefix string
	var count int
	cmd := &cobra.Command{
		Use:   "revoke-credential {vehicle|lag} [NAME...]",
		Short: "Revoke unused enrolment credentials",
		Long: `revoke-credential has the running CA revoke the enrolment credential
issued for each vehicle or LAG, so that it enrols no one (a credential lost
or stolen before use). A credential already used cannot be revoked: its
party is enrolled, and excluding it is gridveil ca revoke.`,
		Example: `  gridveil ca revoke-credential vehicle BV-004`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, err := auth.ParseCredentialKind(args[0])
			if err != nil {
				return err
			}
			names, err := credentialNames(args, count, prefix)
			if err != nil {
				return err
			}
			addr, pub, key, err := o.resolve()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			for _, name := range names {
				a, first, err := auth.NewAdminRevokeCredential(pub, key, kind, name)
				if err != nil {
					return fmt.Errorf("%s %q: %w", kind, name, err)
				}
				res, err := o.ask(ctx, addr, a, first)
				if err != nil {
					return fmt.Errorf("revoking the credential of %s %q: %w", kind, name, err)
				}
				fmt.Fprintln(cmd.OutOrStdout(), res)
			}
			return nil
		},
	}
	o.flags(cmd.Flags())
	cmd.Flags().IntVar(&count, "count", 0, "revoke for PREFIX-001 .. PREFIX-N instead of naming them")
	cmd.Flags().StringVar(&prefix, "prefix", "BV", "with --count: the names' prefix")
	return cmd
}
