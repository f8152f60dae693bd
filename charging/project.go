package charging

import (
	"math"
	"sort"
)

// Project sets x to the Euclidean projection of y onto
//
//	{ x : 0 <= x[t] <= u, sum_t x[t] = e }
//
// and returns the shift nu with x = clip(y - nu, 0, u). It requires
// 0 <= e <= len(y)*u. hint is a starting guess for nu (the previous call's
// result is a good one; NaN means none).
//
// The projection is exact: nu solves the piecewise-linear equation
// phi(nu) = sum_t clip(y[t]-nu, 0, u) = e. A safeguarded Newton iteration
// guesses the set of free coordinates, solves for nu on that linear piece and
// stops when the piece is consistent; it usually needs two or three passes
// over y from a warm start. If it does not settle it falls back to sorting
// the 2T breakpoints (O(T log T)), so the answer is always exact up to
// rounding. x and y may alias.
func Project(y []float64, u, e, hint float64, x []float64) float64 {
	n := len(y)
	if n == 0 {
		return 0
	}
	if e >= float64(n)*u {
		for t := range x[:n] {
			x[t] = u
		}
		return math.Inf(-1)
	}
	if e <= 0 {
		for t := range x[:n] {
			x[t] = 0
		}
		return math.Inf(1)
	}
	tol := 1e-13 * (e + u)
	nu := hint
	if !math.IsNaN(nu) && math.Abs(clampSum(y, nu, u)-e) <= tol {
		// Warm start already exact: the common case in late iterations.
		for t, v := range y {
			x[t] = min(max(v-nu, 0), u)
		}
		return nu
	}
	lo, hi := y[0], y[0]
	for _, v := range y {
		if v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
	}
	lo -= u // phi(lo) = n*u > e
	// phi(hi) = 0 < e
	if math.IsNaN(nu) || nu <= lo || nu >= hi {
		// First guess: every coordinate free.
		s := 0.0
		for _, v := range y {
			s += v
		}
		nu = (s - e) / float64(n)
		if nu <= lo || nu >= hi {
			nu = 0.5 * (lo + hi)
		}
	}
	for iter := 0; ; iter++ {
		// The common case from a warm start: nu is already right, and one
		// branch-free pass shows it.
		phi := clampSum(y, nu, u)
		if math.Abs(phi-e) <= tol {
			break
		}
		if iter == 50 {
			nu = projectSort(y, u, e)
			break
		}
		if phi > e {
			lo = nu
		} else {
			hi = nu
		}
		var sumFree float64
		free, upper := 0, 0
		for _, v := range y {
			d := v - nu
			if d >= u {
				upper++
			} else if d > 0 {
				sumFree += v
				free++
			}
		}
		next := 0.5 * (lo + hi)
		if free > 0 {
			// Solve phi(nu) = e on the current linear piece.
			if n := (sumFree + float64(upper)*u - e) / float64(free); n > lo && n < hi {
				next = n
			}
		}
		if next == nu {
			break
		}
		nu = next
	}
	for t, v := range y {
		x[t] = min(max(v-nu, 0), u)
	}
	return nu
}

// clampSum returns phi(nu) = sum_t clip(y[t]-nu, 0, u).
func clampSum(y []float64, nu, u float64) float64 {
	var s0, s1 float64
	i := 0
	for ; i+1 < len(y); i += 2 {
		s0 += min(max(y[i]-nu, 0), u)
		s1 += min(max(y[i+1]-nu, 0), u)
	}
	if i < len(y) {
		s0 += min(max(y[i]-nu, 0), u)
	}
	return s0 + s1
}

// projectSort finds nu by walking the sorted breakpoints of phi: the
// reference method, O(T log T).
func projectSort(y []float64, u, e float64) float64 {
	bp := make([]float64, 0, 2*len(y))
	for _, v := range y {
		bp = append(bp, v-u, v)
	}
	sort.Float64s(bp)
	phi := func(nu float64) float64 {
		s := 0.0
		for _, v := range y {
			s += math.Min(math.Max(v-nu, 0), u)
		}
		return s
	}
	// phi is non-increasing; find adjacent breakpoints a < b with
	// phi(a) >= e >= phi(b) and interpolate on that linear piece.
	i, j := 0, len(bp)-1
	for j-i > 1 {
		m := (i + j) / 2
		if phi(bp[m]) >= e {
			i = m
		} else {
			j = m
		}
	}
	a, b := bp[i], bp[j]
	pa, pb := phi(a), phi(b)
	if pa == pb {
		return a
	}
	return a + (pa-e)*(b-a)/(pa-pb)
}

// stepProject is Vehicle.Step's gradient step y = x - tau (agg + price)
// and Project(y, u, e, hint, x) in fused passes: the step, the warm
// start's test, the bounds of y and the first Newton piece come out of
// one pass, and each later Newton iteration's phi and piece out of one
// pass, each writing clip(y - nu, 0, u) into x as it goes, so that x is
// the answer when a pass's nu is. Project makes two passes per Newton
// iteration and three before the first; this makes one. The values it
// computes, and the order it adds them in, are Project's (clampSum's two
// alternating sums, the free coordinates' sum in slot order), so the
// shift and the schedule are bit for bit Project's. It requires
// 0 < e < len(x)*u and a finite hint; y is scratch of len(x) values.
func stepProject(x, agg, price []float64, tau, u, e, hint float64, y []float64) float64 {
	n := len(x)
	y, agg, price = y[:n], agg[:n], price[:n]
	tol := 1e-13 * (e + u)
	nu := hint
	// Pass 0 at the hint: y, phi(hint) as clampSum adds it, min and max
	// of y and the linear piece at the hint.
	var s0, s1, sumFree float64
	free, upper := 0, 0
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := 0; i < n; i++ {
		v := x[i] - tau*(agg[i]+price[i])
		y[i] = v
		c := min(max(v-nu, 0), u)
		x[i] = c
		if i&1 == 0 { // clampSum: even slots in s0, odd in s1
			s0 += c
		} else {
			s1 += c
		}
		if v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
		if d := v - nu; d >= u {
			upper++
		} else if d > 0 {
			sumFree += v
			free++
		}
	}
	phi := s0 + s1
	if math.Abs(phi-e) <= tol {
		return nu // the warm start is exact: x holds the answer
	}
	lo -= u
	if nu <= lo || nu >= hi {
		// Rare from a warm start, so the plain sum of y Project's first
		// guess needs is taken here, in its own pass, rather than as a
		// chain of additions in every pass 0.
		sum := 0.0
		for _, v := range y {
			sum += v
		}
		nu = (sum - e) / float64(n)
		if nu <= lo || nu >= hi {
			nu = 0.5 * (lo + hi)
		}
		phi, sumFree, free, upper = newtonPass(y, x, nu, u)
	}
	for iter := 0; ; iter++ {
		if math.Abs(phi-e) <= tol {
			break
		}
		if iter == 50 {
			nu = projectSort(y, u, e)
			for t, v := range y {
				x[t] = min(max(v-nu, 0), u)
			}
			return nu
		}
		if phi > e {
			lo = nu
		} else {
			hi = nu
		}
		next := 0.5 * (lo + hi)
		if free > 0 {
			// Solve phi(nu) = e on the current linear piece.
			if m := (sumFree + float64(upper)*u - e) / float64(free); m > lo && m < hi {
				next = m
			}
		}
		if next == nu {
			break
		}
		nu = next
		phi, sumFree, free, upper = newtonPass(y, x, nu, u)
	}
	return nu // x holds clip(y - nu) from the pass at nu
}

// newtonPass is one Newton iteration's pass of stepProject at nu: phi(nu)
// as clampSum adds it, the linear piece (sum of the free coordinates, how
// many are free and how many at the upper bound) as Project counts it,
// and x set to clip(y - nu, 0, u).
func newtonPass(y, x []float64, nu, u float64) (phi, sumFree float64, free, upper int) {
	x = x[:len(y)]
	var s0, s1 float64
	i := 0
	for ; i+1 < len(y); i += 2 {
		v0, v1 := y[i], y[i+1]
		c0, c1 := min(max(v0-nu, 0), u), min(max(v1-nu, 0), u)
		x[i], x[i+1] = c0, c1
		s0 += c0
		s1 += c1
		if d := v0 - nu; d >= u {
			upper++
		} else if d > 0 {
			sumFree += v0
			free++
		}
		if d := v1 - nu; d >= u {
			upper++
		} else if d > 0 {
			sumFree += v1
			free++
		}
	}
	if i < len(y) {
		v := y[i]
		c := min(max(v-nu, 0), u)
		x[i] = c
		s0 += c
		if d := v - nu; d >= u {
			upper++
		} else if d > 0 {
			sumFree += v
			free++
		}
	}
	return s0 + s1, sumFree, free, upper
}
