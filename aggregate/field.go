package aggregate

import (
	"errors"
	"fmt"
	"math/bits"
)

// P is the prime 2^61 - 1 of the field GF(P) in which secret sharing works.
// A Mersenne prime makes reduction two shifts and an add.
const P uint64 = 1<<61 - 1

// fe is an element of GF(P), always reduced to [0, P).
type fe = uint64

func fadd(a, b fe) fe {
	s := a + b // < 2^62, no overflow
	if s >= P {
		s -= P
	}
	return s
}

func fsub(a, b fe) fe {
	if a >= b {
		return a - b
	}
	return a + P - b
}

func fmul(a, b fe) fe {
	hi, lo := bits.Mul64(a, b)
	// a*b = hi*2^64 + lo = (hi*8 + lo>>61) * 2^61 + (lo & P), and 2^61 = 1 mod P.
	r := (lo & P) + (hi<<3 | lo>>61)
	if r >= P {
		r -= P
	}
	return r
}

// finv returns a^-1 by Fermat's little theorem; a must be non-zero.
func finv(a fe) fe {
	r, e := fe(1), P-2
	for e > 0 {
		if e&1 == 1 {
			r = fmul(r, a)
		}
		a = fmul(a, a)
		e >>= 1
	}
	return r
}

// reduce maps any uint64 to GF(P). The map is not uniform on [0, 2^64) but
// the bias is 2^-61 per value, and it is used only on values drawn from a
// 61-bit range (see randField).
func reduce(v uint64) fe {
	v = (v & P) + (v >> 61)
	if v >= P {
		v -= P
	}
	return v
}

// randField draws a uniform element of GF(P) from a 64-bit source by
// rejection: 61 random bits, rejecting the single value P.
func randField(next func() uint64) fe {
	for {
		if v := next() & P; v != P {
			return v
		}
	}
}

// Share is one Shamir share: the polynomial's value Y at the point X (1..n).
type Share struct {
	X uint64
	Y fe
}

// ErrShares is wrapped by errors about sets of shares.
var ErrShares = errors.New("invalid shares")

// split writes the n shares of secret under a random polynomial of degree
// threshold-1 into out[0..n) (x = 1..n). coef is scratch of threshold-1
// values. Fewer than threshold shares are uniformly distributed whatever the
// secret (Shamir 1979).
func split(secret fe, threshold, n int, next func() uint64, coef []fe, out []fe) {
	for k := range coef[:threshold-1] {
		coef[k] = randField(next)
	}
	for i := 0; i < n; i++ {
		x := fe(i + 1)
		// Horner: secret + c1 x + ... + c_{t-1} x^{t-1}.
		y := fe(0)
		for k := threshold - 2; k >= 0; k-- {
			y = fmul(fadd(y, coef[k]), x)
		}
		out[i] = fadd(y, secret)
	}
}

// lagrangeAtZero returns the weights w_i with f(0) = sum_i w_i f(x_i) for
// any polynomial of degree < len(xs).
func lagrangeAtZero(xs []uint64) ([]fe, error) {
	w := make([]fe, len(xs))
	for i, xi := range xs {
		if xi == 0 || xi >= P {
			return nil, fmt.Errorf("%w: share point %d is outside 1..P-1", ErrShares, xi)
		}
		num, den := fe(1), fe(1)
		for j, xj := range xs {
			if i == j {
				continue
			}
			if xj == xi {
				return nil, fmt.Errorf("%w: two shares at the same point %d", ErrShares, xi)
			}
			num = fmul(num, xj)           // (0 - xj) up to sign
			den = fmul(den, fsub(xj, xi)) // (xi - xj) up to the same sign
		}
		w[i] = fmul(num, finv(den))
	}
	return w, nil
}

// Combine reconstructs the secret from at least threshold shares of a
// polynomial of degree < len(shares). It cannot tell a wrong share from a
// right one; integrity comes from the authenticated channels that carry
// them.
func Combine(shares []Share) (fe, error) {
	if len(shares) == 0 {
		return 0, fmt.Errorf("%w: no shares", ErrShares)
	}
	xs := make([]uint64, len(shares))
	for i, s := range shares {
		xs[i] = s.X
		if s.Y >= P {
			return 0, fmt.Errorf("%w: share value %d is not a field element", ErrShares, s.Y)
		}
	}
	w, err := lagrangeAtZero(xs)
	if err != nil {
		return 0, err
	}
	var r fe
	for i, s := range shares {
		r = fadd(r, fmul(w[i], s.Y))
	}
	return r, nil
}
