// Package numcheck holds the comparisons the tests make between computed and expected numbers.
// Every helper treats NaN and ±Inf as a failure: Go's max(x, NaN) is NaN and NaN > tol is
// false, so a hand-written "worst > tol" check passes on exactly the results it must catch.
package numcheck

import "math"

// Close reports whether |got − want| <= tol with all three finite (a NaN or Inf anywhere,
// the tolerance included, is never close).
func Close(got, want, tol float64) bool {
	if !finite(got) || !finite(want) || !finite(tol) {
		return false
	}
	return math.Abs(got-want) <= tol
}

// RelErr returns max|got − want| / max|want| (the absolute error when want is all zero), or
// +Inf when the lengths differ or either side holds a NaN or Inf.
func RelErr[G, W float32 | float64](got []G, want []W) float64 {
	diff, peak := MaxDiff(got, want)
	if peak == 0 || math.IsInf(diff, 1) {
		return diff
	}
	return diff / peak
}

// MaxDiff returns the largest |got − want| and the largest |want|; diff is +Inf when the
// lengths differ or either side holds a NaN or Inf.
func MaxDiff[G, W float32 | float64](got []G, want []W) (diff, peak float64) {
	if len(got) != len(want) {
		return math.Inf(1), 0
	}
	for i, w := range want {
		g, w := float64(got[i]), float64(w)
		if !finite(g) || !finite(w) {
			return math.Inf(1), 0
		}
		diff = max(diff, math.Abs(g-w))
		peak = max(peak, math.Abs(w))
	}
	return diff, peak
}

// Peak returns max|v|, or +Inf when v holds a NaN or Inf (so a tolerance scaled by it fails
// through Close).
func Peak[T float32 | float64](v []T) float64 {
	var peak float64
	for _, x := range v {
		x := float64(x)
		if !finite(x) {
			return math.Inf(1)
		}
		peak = max(peak, math.Abs(x))
	}
	return peak
}

// Projection returns Σ v[i]·sin(0.7·i + 0.3) in float64: the reference's fingerprint of a
// tensor (golden.py's proj), which a sign flip, a permutation or a misrouted tensor changes
// where an L2 norm does not.
func Projection[T float32 | float64](v []T) float64 {
	var s float64
	for i, x := range v {
		s += float64(x) * math.Sin(0.7*float64(i)+0.3)
	}
	return s
}

// Norm returns the L2 norm of v in float64.
func Norm[T float32 | float64](v []T) float64 {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	return math.Sqrt(ss)
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
