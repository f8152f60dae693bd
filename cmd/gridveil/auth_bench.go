package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gridveil/gridveil/auth/authbench"
)

func newBenchAuthCmd() *cobra.Command {
	var (
		vehicles int
		rings    string
		minTime  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "auth",
		Short: "Compare the anonymous credentials on this machine: anonymity, tracing, sizes, sign, verify, batch and LAG cost",
		Long: `bench auth measures each credential scheme of docs/ARCHITECTURE.md C6 and prints one
table: the anonymity set, who can trace, what can be linked, the credential
and signature sizes, the vehicle's signing time, one-by-one and batch
verification per credential, and what one LAG spends end to end to admit a
vehicle (Noise handshake, checks, batch verification, permit), from which
the time to admit 1000 vehicles at one LAG follows. See docs/AUTH.md.`,
		Example: `  gridveil bench auth
  gridveil bench auth --vehicles 5000 --rings 8,16,64`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rs []int
			for _, f := range strings.Split(rings, ",") {
				k, err := strconv.Atoi(strings.TrimSpace(f))
				if err != nil || k < 1 || k > 256 {
					return fmt.Errorf("--rings %q: ring sizes 1..256, separated by commas", rings)
				}
				rs = append(rs, k)
			}
			if vehicles < 10 {
				return fmt.Errorf("--vehicles %d: at least 10", vehicles)
			}
			res, err := authbench.Run(authbench.Config{Vehicles: vehicles, Rings: rs, MinTime: minTime}, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return res.Print(cmd.OutOrStdout())
		},
	}
	cmd.Flags().IntVar(&vehicles, "vehicles", 1000, "vehicles admitted at one LAG for the end-to-end figure (LSAG: a tenth)")
	cmd.Flags().StringVar(&rings, "rings", "16,64,100", "LSAG ring sizes")
	cmd.Flags().DurationVar(&minTime, "min-time", 300*time.Millisecond, "minimum duration of each micro-benchmark")
	return cmd
}
