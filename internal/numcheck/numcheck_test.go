package numcheck

import (
	"math"
	"testing"
)

// A planted NaN or Inf on either side, or a length mismatch, fails every helper.
func TestNonFiniteFails(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	want := []float64{1, -2, 3}
	for _, bad := range []float64{nan, inf, -inf} {
		got := []float32{1, float32(bad), 3}
		if e := RelErr(got, want); !math.IsInf(e, 1) {
			t.Errorf("RelErr with %v in got = %v, want +Inf", bad, e)
		}
		if e := RelErr([]float32{1, -2, 3}, []float64{1, bad, 3}); !math.IsInf(e, 1) {
			t.Errorf("RelErr with %v in want = %v, want +Inf", bad, e)
		}
		if p := Peak(got); !math.IsInf(p, 1) {
			t.Errorf("Peak with %v = %v, want +Inf", bad, p)
		}
		if Close(bad, 1, 1e9) || Close(1, bad, 1e9) || Close(1, 1, bad) {
			t.Errorf("Close accepts %v", bad)
		}
		if e := RelErr(got, got); !math.IsInf(e, 1) {
			t.Errorf("RelErr of %v against itself = %v, want +Inf", bad, e)
		}
	}
	if e := RelErr([]float32{1, 2}, want); !math.IsInf(e, 1) {
		t.Errorf("RelErr of different lengths = %v", e)
	}
}

func TestValues(t *testing.T) {
	if e := RelErr([]float32{1, -2.5, 3}, []float64{1, -2, 4}); e != 0.25 {
		t.Errorf("RelErr = %v, want 0.25", e)
	}
	if e := RelErr([]float64{0, 1e-3}, []float64{0, 0}); e != 1e-3 {
		t.Errorf("RelErr against zeros = %v, want the absolute 1e-3", e)
	}
	if !Close(1, 1.5, 0.5) || Close(1, 1.5, 0.49) {
		t.Error("Close misjudges |1 − 1.5| against 0.5 and 0.49")
	}
	// The projection sees a sign flip and a swap that the norm cannot.
	v := []float32{3, -1, 2}
	p := Projection(v)
	if want := 3*math.Sin(0.3) - math.Sin(1.0) + 2*math.Sin(1.7); math.Abs(p-want) > 1e-12 {
		t.Errorf("Projection = %v, want %v", p, want)
	}
	if q := Projection([]float32{-1, 3, 2}); q == p || Norm([]float32{-1, 3, 2}) != Norm(v) {
		t.Error("a swap changes the norm or keeps the projection")
	}
	if n := Norm([]float64{3, 4}); n != 5 {
		t.Errorf("Norm = %v", n)
	}
}
