// Package day is a day on the platform as its parties live it (docs/ARCHITECTURE.md,
// "A day on the platform"), shared by the services, gridveil up and the files they
// write: the plan every party derives from the same scenario and seed
// (which vehicles a host runs, which pseudonyms join which bus, what the
// SO knows), the files each party leaves (the SO's view, each host's
// vehicles' schedules) and how a finished day's files are assembled into
// the documents gridveil sim writes.
//
// It does no messaging itself: package service runs the parties over
// package transport. Today the day covers coordination (step 5 of "A day
// on the platform") with the "none" aggregation mechanism; docs/PLATFORM.md
// lists what the other steps still run only in gridveil sim.
package day
