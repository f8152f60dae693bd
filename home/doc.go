// Package home implements home load hiding with the EV battery, docs/ARCHITECTURE.md
// C4 (seed 000: "privacy protection of smart home electricity information
// based on plug-in electric vehicles").
//
// A household's smart meter reveals what the household does. The home
// energy manager (SHEMS) charges and discharges the EV's battery so that
// the meter shows something else, at a cost the user chooses with the
// preference factor alpha.
//
// # Models
//
// Meter (seed eq. 1): P_meter(t) = P_load(t) + P_ch(t) - P_dis(t), >= 0
// unless export is allowed. Battery (seed eqs. 3-7, docs/ARCHITECTURE.md C4):
//
//	SOC(t+1) = SOC(t)(1 - delta) + (eta_c P_ch(t) - P_dis(t)/eta_d - P_drive(t)) dt / E_bat
//	0 <= P_ch <= s(t) Pch_max,  0 <= P_dis <= (1 - s(t)) Pdis_max,  s(t) in {0, 1}
//	SOC_min <= SOC(t) <= SOC_max;  P_ch = P_dis = 0 while the EV is away
//
// P_drive is the trip's consumption while away (zero at home), which the
// design's equation leaves implicit. At departure the battery holds at
// least the trip energy distance/km_per_kWh plus a reserve, and enough that
// the trip leaves it at or above SOC_min; at the end of the day it holds at
// least SOCEnd (by default its starting SOC, so that a day is energy
// neutral and costs are comparable). Objective (seed eq. 9):
//
//	alpha * sum_t r(t) P_meter(t) dt + (1 - alpha) * beta * sum_t (P_meter(t+1) - P_meter(t))^2
//
// Prices follow the seed's five steps (section 3.3): the supplier announces
// the day's prices (Tariff.Announce, step 1); the smart meter relays them to
// the SHEMS (SmartMeter.Relay, step 2, which refuses replays and negative
// prices); the SHEMS plans the battery (a Scheduler, step 3); the plan
// discharges the battery at peak and lets the grid supply the rest, alone
// or together (Supply, steps 4 and 5).
//
// Household load comes from a seeded appliance-level generator (NewHousehold,
// NewDay): nine appliance kinds at one-minute resolution, averaged to the
// meter's slots, each appliance's on/off ground truth kept for the attacker.
// docs/HOME.md lists its powers, duty cycles and habits.
//
// # The optimal scheduler: exact on the grid
//
// Optimal discretises the SOC into K levels SOC_min + k h, h = (SOC_max -
// SOC_min)/(K-1), and minimises the objective exactly over every schedule
// whose SOC lies on that grid at the end of every slot in which the EV is at
// home (the start is the given SOC0, which need not be on the grid). The
// power of a slot follows from its two SOC values through the battery
// equation, so a move to a higher level charges (s = 1) and a move to a
// lower level discharges (s = 0): the binary s(t) is exact, not relaxed.
// The trip is one forced move: the SOC at return is the highest grid level
// at or below the SOC after driving, the battery equation run slot by slot
// with the trip's energy spread evenly over the away slots (not the whole
// energy debited after n slots of self-discharge, which is lower by
// E (1 - sum_{k<n} (1-delta)^k / n)), so the grid rounds the trip's
// energy up by less than one step (E_bat h); the schedule reports that
// rounding as part of P_drive. Within this set of grid schedules the result
// is the global optimum up to floating-point rounding; the continuous
// optimum is at most as large, and finer grids approach it.
//
// The squared-difference term couples consecutive meter values, and
// P_meter(t) depends on the SOC at both ends of slot t. The state after
// slot t is therefore the pair (SOC level before slot t, SOC level after
// it), equivalently (level, previous action), which fixes P_meter(t)
// exactly and lets the next slot's squared difference be evaluated without
// approximation. Enumerating the next level would cost O(K * band^2) per
// slot (band: the levels one slot can reach, about 15 for a 7.4 kW charger
// at 201 levels). Because every candidate next level c contributes
// w (y_c - x)^2 + V(c) with the same curvature w = (1 - alpha) beta in
// x = P_meter(t), the minimum over c is w x^2 plus a lower envelope of lines
// with slopes -2 w y_c, already sorted because y_c grows with c. Building
// the envelope once per level and querying it by binary search gives
// O(K * band * log band) per slot and the same optimum. Tests check it
// against exhaustive search over every grid path and against the plain
// enumeration.
//
// The baselines are online: BestEffort (hold the meter at its last value),
// NILL (steady target with high and low recovery), Stepping (meter on a
// ladder of fixed steps) and None (the EV is only a car). A shared guard
// keeps each of them feasible: it clips every proposal to the charger
// limits, meter >= 0 and the least SOC from which the trip and the end of
// the day can still be met.
//
// # Privacy metrics and threat model
//
// The adversary sees the meter series at the meter's resolution (what the
// supplier or anyone with the data receives) and knows the population the
// household comes from: the appliance kinds, their powers and the habits'
// distribution, learned from labelled households drawn by the same
// generator but not including this one. It does not see the load, the
// battery or the schedule. Four figures are reported side by side: R2
// (the seed's measure; 0 is best), R2 after the best lag within +-MaxLag
// slots, mutual information (MutualInformation documents its estimator) and
// the F1 of the Attacker's strongest attack on appliance on/off, scored
// against the generator's ground truth. R2 and mutual information can be
// fooled: a constant-power block, such as EV charging, drives R2 down while
// an edge detector still finds the appliances, and a perfectly constant
// meter gives R2 = 0 while the attacker keeps what it knows from habits
// alone. The attacker's F1, read against its habits-only floor, is the
// figure to believe.
//
// Everything here is a pure core: deterministic from explicit seeds
// (math/rand/v2 PCG streams passed in), with no I/O, clocks, goroutines or
// global randomness.
package home
