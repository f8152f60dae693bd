// Package ldp implements local differential privacy (LDP) for smart-meter
// aggregation, docs/ARCHITECTURE.md C5 (seed 004: "An efficient data aggregation
// scheme with local differential privacy in smart grid", which perturbs
// meter readings by randomized response): every meter perturbs its own
// reading before it leaves the house, and the system operator (SO) debiases
// what it receives into per-bus sums, means and histograms.
//
// # Readings and domains
//
// A reading x (kW) is clipped to the public range [0, M], M = Config.MaxKW
// (NaN counts as 0). The continuous mechanisms see t = 2x/M - 1 in [-1, 1].
// The discrete ones see one of k levels g_j = j*M/(k-1), j = 0..k-1: x is
// rounded at random to one of the two levels around it, up with
// probability (x - g_a)/(g_{a+1} - g_a), so that E[g_l] = x exactly; this
// makes the sum estimators unbiased for the clipped readings themselves, not
// for a binned version of them. The rounding is part of the randomised
// mapping and adds (x - g_a)(g_{a+1} - x) to the variance.
//
// # Mechanisms
//
// A mechanism A is epsilon-LDP if for every two inputs x, x' and every set of
// outputs S, P[A(x) in S] <= e^epsilon P[A(x') in S]. For each mechanism below
// the output law is written for one input; the proof sketch bounds the ratio
// of the laws for two inputs. Rounding to levels first does not weaken it:
// the law given x is a mixture over levels of laws that each obey the bound
// against every other level, so the mixtures obey it too.
//
// GRR, generalised randomized response over k levels (Warner 1965; the
// "direct encoding" of Wang, Blocki, Li and Jha, USENIX Security 2017;
// Kairouz, Bonawitz and Ramage, ICML 2016). The meter reports its level l
// with probability p = e^eps/(e^eps+k-1) and each other level with
// q = 1/(e^eps+k-1). Proof: every output has probability p or q under any
// input, and p/q = e^eps. With k = 2 it is binary randomized response, the
// scheme of seed 004 and the default (the smallest variance for sums);
// after the randomised rounding it has exactly the output law of Duchi's
// mechanism below, relabelled (both report "high" with probability
// 1/2 + t(e^eps-1)/(2(e^eps+1))), and so the same variance.
//
// OUE, optimised unary encoding (Wang et al., USENIX Security 2017, sec. 4.4).
// The level is one-hot encoded into k bits; bit l is kept at 1 with
// probability p = 1/2, every other bit is set to 1 with q = 1/(e^eps+1).
// Proof: the laws for levels l and l' differ only in bits l and l'; the
// ratio is at most p(1-q)/((1-p)q) = e^eps. Its frequency variance does not
// grow with k, which makes it the histogram mechanism; k <= 64 (one word).
//
// Duchi et al. (Duchi, Jordan and Wainwright, "Minimax optimal procedures
// for locally private estimation", JASA 2018; one-dimensional form as in
// Wang et al., ICDE 2019, Alg. 1). Output +B or -B, B = (e^eps+1)/(e^eps-1),
// with P[+B] = 1/2 + t(e^eps-1)/(2(e^eps+1)). Proof: P[+B] ranges from
// 1/(e^eps+1) (t = -1) to e^eps/(e^eps+1) (t = 1), ratio e^eps; the same for -B.
//
// Piecewise mechanism, PM (Wang, Xiao, Yang, Zhao, Hui, Shin, Shin and Yu,
// "Collecting and analyzing multidimensional data with local differential
// privacy", ICDE 2019, Alg. 2). With C = (e^(eps/2)+1)/(e^(eps/2)-1),
// l(t) = (C+1)t/2 - (C-1)/2 and r(t) = l(t) + C - 1, the output has density
// pd = (e^eps - e^(eps/2))/(2e^(eps/2)+2) on [l(t), r(t)] and pd/e^eps on the
// rest of [-C, C]. Proof: for any two inputs the density at any y is pd or
// pd/e^eps, ratio at most e^eps.
//
// Hybrid mechanism, HM (Wang et al., ICDE 2019, sec. III-C). With
// probability alpha run PM, otherwise Duchi's; alpha = 1 - e^(-eps/2) for
// eps > eps* ~ 0.61 and alpha = 0 below (eps* solves Var_PM(0) = Var_Duchi(0);
// see EpsilonStar). Proof: the coin does not depend on the input, the output
// law is alpha times PM's density plus (1-alpha) times Duchi's two atoms at
// +-B; the atoms and the density each obey the e^eps ratio, so every set S
// does.
//
// Floating point: OUE's q is realised as a multiple of 2^-32, rounded up,
// which can only lower the effective epsilon (the estimators use the
// realised q and stay exactly unbiased); the other probabilities are
// realised to 2^-53. Piecewise outputs are snapped to the grid C*j/2^32,
// because the floats a sampler can reach depend on l(t) and would leak t
// through a report's low-order bits (Mironov, "On significance of the least
// significant bits for differential privacy", CCS 2012); each grid point's
// probability is an integral of the density, which keeps the bound.
//
// # Estimators and their variance
//
// Every report r decodes (Mechanism.Decode) to an unbiased estimate x^ of
// its clipped reading: M(y+1)/2 for the continuous mechanisms, and for the
// discrete ones (sum_j g_j [level j reported] - qG)/(p-q) with G = sum_j g_j.
// A group's (bus's) sum estimate is the sum of its x^, the mean divides by
// the number of reports, and the histogram estimates the frequency of level
// j as (C_j/n - q)/(p - q), C_j the count of reports of level j (of bit j
// set, for OUE); the Aggregator computes all three from counts. The exact
// variances, per report, for input t in [-1, 1] (ValueVariance) are
//
//	Duchi:  B^2 - t^2                                 4.68 at t = 0, eps = 1
//	PM:     t^2/(e^(eps/2)-1) + (e^(eps/2)+3)/(3(e^(eps/2)-1)^2)
//	                                                  5.22 at t = 1, eps = 1
//	HM:     alpha Var_PM(t) + (1-alpha) Var_Duchi(t)  4.29 for every t, eps = 1
//
// (HM's t^2 terms cancel for alpha = 1 - e^(-eps/2)). For GRR and OUE the
// per-report variance of a level's frequency estimate, when a reading lands
// on the level with probability f, is (FrequencyVariance)
//
//	P(1-P)/(p-q)^2,  P = q + f(p-q)
//	GRR at f = 0:  (e^eps+k-2)/(e^eps-1)^2   0.92 for binary RR (k = 2), eps = 1
//	OUE at f = 0:  4e^eps/(e^eps-1)^2        3.68 at eps = 1
//
// and the variance of a reading estimate is the rounding variance plus the
// mixture over the two levels of the level-conditional variance
// (ReadingVariance). A sum over n independent reports has the sum of their
// variances; Estimate carries the worst case over all readings (n times
// WorstReadingVariance), which needs no knowledge of the readings, and
// Interval turns it into a normal-approximation confidence interval.
//
// # Budget and sampling
//
// Under sequential composition (Dwork and Roth, "The algorithmic
// foundations of differential privacy", 2014, Thm. 3.16) a meter that
// sends reports at eps_1, eps_2, ... in a day has spent sum_j eps_j that day;
// the Accountant keeps that ledger and refuses a report that would exceed
// the day's budget. A Plan decides which slots of the day a meter reports:
// every slot; one slot in every s from a random offset; or m slots drawn at
// random without replacement. Given a day budget E a plan splits it evenly
// over the meter's reports (at most ceil(T/s), or m, instead of T), so each
// report gets more epsilon; the SO scales the reports it gets for a slot by
// 1/pi, pi the probability that a meter reports that slot
// (Horvitz-Thompson), which keeps the sum unbiased. For a meter with
// reading x and per-report variance V the slot's sum then has variance
// V/pi + x^2(1/pi - 1): sampling wins when V falls faster than pi, which is
// the case at small epsilon, where V ~ 1/eps^2 (the same trade as the
// dimension sampling of Wang et al., ICDE 2019, sec. IV).
//
// # Baselines for coordinated charging
//
// EstimateBaseline models each bus's baseline as the sum of a number of
// household meters, runs the meters and the SO, and returns the charging
// problem with the SO's estimated baseline, so that C2 can run on what the
// SO would really know; Compare scores the result on the true grid.
//
// # Threat model
//
// The SO, and anyone who sees the reports, is curious: it learns every
// report, the mechanism, its parameters and the meter population. LDP
// bounds what any single report (and, by composition, a day of them) says
// about one household's reading, whatever the SO knows otherwise. Meters are
// trusted to run the mechanism honestly; a malicious meter can still shift
// a sum by its report's range (bounded by DecodeReport's range checks), but
// no more. Which slots a meter reports under a Plan is drawn independently
// of its readings and reveals nothing about them.
//
// The package is a pure core: no I/O, goroutines, clocks or global random
// state. Every draw comes from the *rand.Rand the caller passes in, in a
// fixed order, so equal seeds give equal results.
package ldp
