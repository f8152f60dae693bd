// Package grid models radial distribution feeders with the linearized
// DistFlow (LinDistFlow) equations of docs/ARCHITECTURE.md C1 (seed 001, eq. for V_j^2):
//
//	V_j(t)^2 = v0^2 - 2 * sum_k R_jk p_k(t) - 2 * sum_k X_jk q_k(t)
//
// where R_jk (X_jk) is the resistance (reactance) of the lines shared by the
// paths from the slack bus to j and to k, and p_k, q_k are net loads in per
// unit on the feeder's base power. The package never forms R or X: a feeder is
// stored as a tree in topological order (every bus after its parent), and the
// products R*w and X*w are evaluated in O(buses) by summing w up the tree
// (line flows) and then accumulating r*flow down it (voltage drops).
//
// It also provides the IEEE 13-node test feeder reduced to a single-phase
// positive-sequence equivalent (docs/ARCHITECTURE.md C1 table), residential load profiles
// that shape each bus's baseline, and regions: K feeders under one system
// operator, which is how 10^3 to 10^6 vehicles are placed on electrically
// sensible networks.
//
// Units: power kW and kvar, impedance per unit on the feeder's base, voltage
// per unit. Everything here is deterministic and free of I/O.
package grid
