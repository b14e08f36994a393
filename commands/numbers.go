package commands

import "math"

// jsonInteger reads a valid JSON number literal and reports whether its value
// is a whole number ("10", "-0", "1e3", "2.0" are; "10.5", "1e-1" are not).
// The value saturates at math.MinInt64/math.MaxInt64, which is enough for
// range checks; the literal itself is what gets stored when it must be kept.
//
// Hand-written rather than strconv.ParseFloat (which would round
// "1.0000000000000000001" to a whole number) or math/big (whose parse of
// "1e999999999" is a denial of service): an exact decimal check on the digits.
func jsonInteger(lit []byte) (n int64, whole bool) {
	neg := false
	if len(lit) > 0 && lit[0] == '-' {
		neg = true
		lit = lit[1:]
	}
	i := 0
	for i < len(lit) && lit[i] >= '0' && lit[i] <= '9' {
		i++
	}
	intPart := lit[:i]
	var frac []byte
	if i < len(lit) && lit[i] == '.' {
		j := i + 1
		for j < len(lit) && lit[j] >= '0' && lit[j] <= '9' {
			j++
		}
		frac = lit[i+1 : j]
		i = j
	}
	exp := 0
	if i < len(lit) && (lit[i] == 'e' || lit[i] == 'E') {
		i++
		eneg := false
		if i < len(lit) && (lit[i] == '+' || lit[i] == '-') {
			eneg = lit[i] == '-'
			i++
		}
		for ; i < len(lit); i++ {
			if exp < 1_000_000 {
				exp = exp*10 + int(lit[i]-'0')
			}
		}
		if eneg {
			exp = -exp
		}
	}
	nd := len(intPart) + len(frac)
	digit := func(k int) int64 {
		if k < len(intPart) {
			return int64(intPart[k] - '0')
		}
		if k < nd {
			return int64(frac[k-len(intPart)] - '0')
		}
		return 0
	}
	zero := true
	for k := 0; k < nd; k++ {
		if digit(k) != 0 {
			zero = false
			break
		}
	}
	if zero {
		return 0, true
	}
	point := len(intPart) + exp // the decimal point sits before digit index point
	for k := max(point, 0); k < nd; k++ {
		if digit(k) != 0 {
			return 0, false
		}
	}
	// Whole and non-zero, so point > 0 and a non-zero digit comes before it:
	// the loop saturates within about 20 steps after that digit.
	var v int64
	for k := 0; k < point; k++ {
		d := digit(k)
		if v > (math.MaxInt64-d)/10 {
			if neg {
				return math.MinInt64, true
			}
			return math.MaxInt64, true
		}
		v = v*10 + d
	}
	if neg {
		v = -v
	}
	return v, true
}
