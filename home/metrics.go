package home

import (
	"math"
	"sort"
)

// MaxLag is the largest shift, in slots, over which LaggedR2 searches.
const MaxLag = 4

// R2 is the coefficient of determination between the meter and the load:
// the squared Pearson correlation, i.e. the share of the load's variance
// that the best affine function of the meter explains (seed 000 section
// 4.2, after its reference [9]). 1: the meter reveals the load; 0: it
// explains none of it. A constant series carries no linear information and
// gives 0.
func R2(meter, load []float64) float64 {
	n := min(len(meter), len(load))
	if n < 2 {
		return 0
	}
	var mx, my float64
	for i := range n {
		mx += meter[i]
		my += load[i]
	}
	mx /= float64(n)
	my /= float64(n)
	var sxy, sxx, syy float64
	for i := range n {
		dx, dy := meter[i]-mx, load[i]-my
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
	}
	// Relative to the magnitudes: a series constant up to rounding counts
	// as constant.
	scale := 1e-24 * float64(n)
	if sxx <= scale*(1+mx*mx) || syy <= scale*(1+my*my) {
		return 0
	}
	r := sxy * sxy / (sxx * syy)
	return math.Min(r, 1)
}

// LaggedR2 is the largest R2 between the meter shifted by lag slots and
// the load, over |lag| <= maxLag, computed on the overlapping slots: a
// battery that only delays the load's pattern does not hide it. It returns
// the R2 and the lag (positive: the meter trails the load).
func LaggedR2(meter, load []float64, maxLag int) (r2 float64, lag int) {
	n := min(len(meter), len(load))
	for l := -maxLag; l <= maxLag; l++ {
		if n-abs(l) < 3 {
			continue
		}
		var m, x []float64
		if l >= 0 {
			m, x = meter[l:n], load[:n-l]
		} else {
			m, x = meter[:n+l], load[-l:n]
		}
		if v := R2(m, x); v > r2 || (v == r2 && abs(l) < abs(lag)) {
			r2, lag = v, l
		}
	}
	return r2, lag
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// MutualInformation estimates I(meter; load) in bits, treating the slots as
// samples of a joint distribution. Both series are discretised into B
// equal-frequency bins (B = round(n^(1/3)), at least 2; tied values always
// share a bin, so a constant series has one bin), the plug-in estimate is
// taken from the joint histogram, and the Miller-Madow correction
// subtracts its first-order bias (cells_xy - cells_x - cells_y + 1) /
// (2 n ln 2), where cells count non-empty bins. The result is clamped at 0.
// It sees only the marginal relation, not time structure (the attacker
// does), and with 96 slots its resolution is about 0.1 bit.
func MutualInformation(meter, load []float64) float64 {
	n := min(len(meter), len(load))
	if n < 2 {
		return 0
	}
	B := max(2, int(math.Round(math.Cbrt(float64(n)))))
	bx, nx := quantileBins(meter[:n], B)
	by, ny := quantileBins(load[:n], B)
	joint := make([]int, nx*ny)
	cx, cy := make([]int, nx), make([]int, ny)
	for i := range n {
		joint[bx[i]*ny+by[i]]++
		cx[bx[i]]++
		cy[by[i]]++
	}
	N := float64(n)
	var mi float64
	cells := 0
	for i := range nx {
		for j := range ny {
			c := joint[i*ny+j]
			if c == 0 {
				continue
			}
			cells++
			mi += float64(c) / N * math.Log(float64(c)*N/(float64(cx[i])*float64(cy[j])))
		}
	}
	mi /= math.Ln2
	mi -= float64(cells-nonzero(cx)-nonzero(cy)+1) / (2 * N * math.Ln2)
	return math.Max(mi, 0)
}

func nonzero(c []int) int {
	k := 0
	for _, v := range c {
		if v > 0 {
			k++
		}
	}
	return k
}

// quantileBins assigns each value to one of at most B equal-frequency bins
// by rank; equal values (within 1e-9 relative) get the same bin. It returns
// the bins, renumbered 0..k-1, and k.
func quantileBins(x []float64, B int) ([]int, int) {
	n := len(x)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return x[idx[a]] < x[idx[b]] })
	bins := make([]int, n)
	rank := 0
	for k := 0; k < n; {
		j := k
		for j+1 < n && x[idx[j+1]]-x[idx[k]] <= 1e-9*(1+math.Abs(x[idx[k]])) {
			j++
		}
		bin := rank * B / n
		for i := k; i <= j; i++ {
			bins[idx[i]] = bin
		}
		rank += j - k + 1
		k = j + 1
	}
	// Renumber the bins in use.
	used := make([]int, B)
	for i := range used {
		used[i] = -1
	}
	k := 0
	for _, i := range idx {
		if used[bins[i]] < 0 {
			used[bins[i]] = k
			k++
		}
	}
	for i := range bins {
		bins[i] = used[bins[i]]
	}
	return bins, k
}
