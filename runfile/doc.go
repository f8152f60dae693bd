// Package runfile is the documents a gridveil run writes and how they are
// rendered (docs/FORMATS.md, PRIVACY.md, LEDGER.md, LDP.md, HOME.md): the
// types of convergence.json, privacy.json, so_view.json, market.json, ldp_baseline.json,
// home.json and ldp.json, the report.html each run draws from them, and
// the summary a run prints. instance.json and solution.json are package
// scenario's (scenario.Instance, scenario.Solution).
//
// It is shared by everything that writes or reads a run: gridveil sim and
// the in-process runs of package sim, gridveil up and the services, and a
// dashboard that shows a run's files. Nothing here computes a result or
// touches a file: the constructors and renderers are pure functions of a
// finished run's data, and the documents are written through package
// rundir by whoever holds the directory.
package runfile
