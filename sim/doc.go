// Package sim runs gridveil's simulations in one process, every party of
// them in the same address space and deterministic from a seed
// (docs/ARCHITECTURE.md, "Pure cores, thin shells"): the day of "A day on
// the platform" as far as it runs in process (RunDay: scenario, instance,
// the private aggregation mechanism, coordinated charging, the true grid,
// the charging-only comparison, the market on the ledger application, the
// privacy comparison), the home load-hiding run (RunHomes, C4) and the LDP
// meter experiment (RunLDP, C5).
//
// It drives the pure cores (charging, aggregate, ledger, market, home,
// ldp) and turns their results into the documents of package runfile. The
// runs themselves open no file and no socket: Load reads the scenario,
// and a finished run's files are rendered by its Files or written into a
// directory by its writer (Day.Write, WriteHomes, WriteLDP) through
// package rundir, all or none. The runs spread work over goroutines only
// where each unit's result is a pure function of the seed and its index,
// so the documents do not depend on the number of workers. gridveil sim,
// home and ldp are flag parsing around this package; gridveil up and the
// services share its documents through package runfile.
package sim
