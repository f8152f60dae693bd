package aggregate

import "math"

// FixedScale is the fixed-point scale of reports in the cryptographic
// mechanisms: a value v kW is encoded as round(v * 2^32). The resolution is
// 2.3e-10 kW; sums stay exact while |sum| < 2^31 kW in Z_2^64 and
// < 2^28 kW in GF(P), far beyond any bus.
const FixedScale = 1 << 32

// encode64 maps v to Z_2^64 (two's complement). It rounds half to even,
// which the hardware does in one instruction; math.Round does not.
func encode64(v float64) uint64 { return uint64(int64(math.RoundToEven(v * FixedScale))) }

// decode64 maps a Z_2^64 sum back to kW.
func decode64(u uint64) float64 { return float64(int64(u)) / FixedScale }

// encodeField maps v to GF(P), negative values to P - |v|.
func encodeField(v float64) fe {
	i := int64(math.Round(v * FixedScale))
	if i >= 0 {
		return reduce(uint64(i))
	}
	return fsub(0, reduce(uint64(-i)))
}

// decodeField maps a GF(P) element back to kW, reading the upper half of the
// field as negative numbers.
func decodeField(u fe) float64 {
	if u > P/2 {
		return -float64(P-u) / FixedScale
	}
	return float64(u) / FixedScale
}
