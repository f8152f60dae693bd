// Package dashboard serves gridveil's live dashboard over HTTP (docs/ARCHITECTURE.md
// C8): a page that draws a finished run's files (the feeder, the
// coordination, privacy, market and ledger, authentication, meters and
// homes) and follows a running coordination from the SO's progress
// messages on NATS, pushed to the browser by server-sent events.
//
// The page reads the same versioned JSON API (/api/v1/...) that any other
// tool may read; docs/DASHBOARD.md documents it. The API sends summaries
// (per slot, per bus, per window, per iteration), never every vehicle's
// series, so a dashboard following a 10^4-vehicle day stays cheap for the
// browser. The server is read-only: it answers GET and HEAD and nothing
// else, listens on loopback unless told otherwise, and then demands a
// token.
//
// The charting library (Apache ECharts, pinned in web/package.json and
// web/package-lock.json) and the hand-written page are embedded in the
// binary, so serving the dashboard needs no npm.
package dashboard
