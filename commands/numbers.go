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
	d := parseDecimal(lit)
	nd := len(d.intPart) + len(d.frac)
	zero := true
	for k := 0; k < nd; k++ {
		if d.digit(k) != 0 {
			zero = false
			break
		}
	}
	if zero {
		return 0, true
	}
	point := len(d.intPart) + d.exp // the decimal point sits before digit index point
	for k := max(point, 0); k < nd; k++ {
		if d.digit(k) != 0 {
			return 0, false
		}
	}
	// Whole and non-zero, so point > 0 and a non-zero digit comes before it:
	// the loop saturates within about 20 steps after that digit.
	var v int64
	for k := 0; k < point; k++ {
		dk := d.digit(k)
		if v > (math.MaxInt64-dk)/10 {
			if d.neg {
				return math.MinInt64, true
			}
			return math.MaxInt64, true
		}
		v = v*10 + dk
	}
	if d.neg {
		v = -v
	}
	return v, true
}

// decimal is a JSON number literal taken apart: its value is
// ±intPart.frac × 10^exp.
type decimal struct {
	neg           bool
	intPart, frac []byte // digits before and after the point
	exp           int    // stops growing in magnitude once past 1,000,000
}

// parseDecimal takes a valid JSON number literal apart; the literal's
// slices are shared, not copied.
func parseDecimal(lit []byte) decimal {
	var d decimal
	if len(lit) > 0 && lit[0] == '-' {
		d.neg = true
		lit = lit[1:]
	}
	i := 0
	for i < len(lit) && lit[i] >= '0' && lit[i] <= '9' {
		i++
	}
	d.intPart = lit[:i]
	if i < len(lit) && lit[i] == '.' {
		j := i + 1
		for j < len(lit) && lit[j] >= '0' && lit[j] <= '9' {
			j++
		}
		d.frac = lit[i+1 : j]
		i = j
	}
	if i < len(lit) && (lit[i] == 'e' || lit[i] == 'E') {
		i++
		eneg := false
		if i < len(lit) && (lit[i] == '+' || lit[i] == '-') {
			eneg = lit[i] == '-'
			i++
		}
		for ; i < len(lit); i++ {
			if d.exp < 1_000_000 {
				d.exp = d.exp*10 + int(lit[i]-'0')
			}
		}
		if eneg {
			d.exp = -d.exp
		}
	}
	return d
}

// digit is the decimal's k-th digit, counted from the first of intPart;
// 0 past the last.
func (d *decimal) digit(k int) int64 {
	if k < len(d.intPart) {
		return int64(d.intPart[k] - '0')
	}
	if k < len(d.intPart)+len(d.frac) {
		return int64(d.frac[k-len(d.intPart)] - '0')
	}
	return 0
}
