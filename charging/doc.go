// Package charging implements decentralized valley filling with voltage
// limits, docs/ARCHITECTURE.md C2 (seed 001, problem P1 and its primal-dual update,
// eq. 10).
//
// Each vehicle i at bus b(i) keeps its local set X_i to itself: charger
// limit pmax_i while plugged in, nothing otherwise, and
// eta_i * dt * sum_t x_i(t) = E_i. The system operator (SO) minimises
//
//	f(x) = 1/2 sum_t (D(t) + sum_i x_i(t))^2
//
// subject to the LinDistFlow voltage limits V_j(t)^2 >= vmin^2 of every
// feeder of its region. Solve runs the projected-gradient primal-dual
// iteration in which each vehicle's step uses only its own set and what the
// SO broadcasts (the aggregate and a per-bus voltage price), and the SO sees
// per-bus sums only through an Aggregator, the seam where C3's private
// aggregation mechanisms plug in. Project is the exact Euclidean projection
// onto X_i (no QP solver); LowerBound is an independent Lagrangian bound
// that certifies how close a solution is to the optimum.
//
// The package is a pure core: no I/O, clocks or global randomness. Solve
// spreads the vehicles' independent updates over goroutines, but every sum
// is formed in a fixed order, so the result is identical for any number of
// workers.
//
// The hot loops are written for the memory system rather than for
// brevity, with the arithmetic of the plain versions kept operation for
// operation so that results stay bit-identical (tested): a vehicle's step
// forms its gradient step, tests the warm start and takes the first
// Newton piece of the projection in one pass and each further Newton
// iteration in one more (stepProject; Project needs two per iteration and
// three before the first); with the Exact aggregator the bus sums are
// taken as each schedule is written; and the SO's dual step multiplies by
// R on whole rows of slots, one walk of the feeder's tree per product
// instead of one per slot (docs/PERFORMANCE.md).
package charging
