// Package scenario turns scenario descriptions into charging problems and
// writes the problems and their solutions as the documented JSON files of
// docs/FORMATS.md.
//
// A scenario is a YAML document (or one of the built-in ones: ieee13-paper,
// ieee13-stressed) that names a feeder, tiles it into a region of K feeders
// under one system operator, and draws each feeder's vehicles from stated
// distributions with a seeded generator: the same scenario and seed always
// give the same instance, byte for byte. Vehicles can also be listed
// explicitly, which is how user-defined cases and the instance files of
// earlier runs are read back.
package scenario
