// Command gridveil is the one binary of the gridveil platform: simulations,
// services, agents and benchmarks (docs/ARCHITECTURE.md C8). Run gridveil help.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code with its message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "gridveil",
		Short: "Private and secure vehicle-to-grid coordination",
		Long: `gridveil coordinates EV charging on distribution feeders: it flattens the
feeder's load within voltage limits while each vehicle keeps its own data.

Start with: gridveil sim`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newSimCmd(), newHomeCmd(), newLDPCmd(), newServeCmd(), newUpCmd(), newAgentCmd(), newCACmd(), newVersionCmd(), newBenchCmd(), newDashboardCmd())
	return root
}

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "gridveil:", err)
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}
