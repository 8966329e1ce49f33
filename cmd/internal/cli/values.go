package cli

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/segkit/segkit/segmentation"
)

// The flags whose values are pairs (HxW, LONGxSHORT, MIN,MAX) or optional, as pflag.Values.

// pair splits "AxB" (or "A,B") into its two parts.
func pair(s, sep string) (string, string, bool) {
	a, b, ok := strings.Cut(strings.ToLower(strings.TrimSpace(s)), sep)
	return strings.TrimSpace(a), strings.TrimSpace(b), ok
}

func positive(s string) (int, error) {
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		return 0, fmt.Errorf("%q is not a positive integer", s)
	}
	return v, nil
}

// CropValue is --crop H or HxW: Config.Crop (the height) and CropW (0 when square).
type CropValue struct{ C *segmentation.Config }

func (v CropValue) String() string {
	if v.C.CropW == 0 || v.C.CropW == v.C.Crop {
		return fmt.Sprint(v.C.Crop)
	}
	return fmt.Sprintf("%dx%d", v.C.Crop, v.C.CropW)
}

func (v CropValue) Set(s string) error {
	hs, ws, two := pair(s, "x")
	h, err := positive(hs)
	w := h
	if err == nil && two {
		w, err = positive(ws)
	}
	if err != nil {
		return fmt.Errorf("H or HxW: %w", err)
	}
	v.C.Crop, v.C.CropW = h, 0
	if w != h {
		v.C.CropW = w
	}
	return nil
}

func (CropValue) Type() string { return "H[xW]" }

// ScaleValue is LONGxSHORT ("" while zero: the default applies).
type ScaleValue struct{ P *[2]int }

func (v ScaleValue) String() string {
	if *v.P == [2]int{} {
		return ""
	}
	return fmt.Sprintf("%dx%d", v.P[0], v.P[1])
}

func (v ScaleValue) Set(s string) error {
	ls, ss, ok := pair(s, "x")
	if !ok {
		return fmt.Errorf("LONGxSHORT, e.g. 2048x512")
	}
	long, err := positive(ls)
	if err != nil {
		return fmt.Errorf("LONGxSHORT: %w", err)
	}
	short, err := positive(ss)
	if err != nil {
		return fmt.Errorf("LONGxSHORT: %w", err)
	}
	*v.P = [2]int{long, short}
	return nil
}

func (ScaleValue) Type() string { return "LONGxSHORT" }

// RatioValue is MIN,MAX.
type RatioValue struct{ P *[2]float64 }

func (v RatioValue) String() string {
	if *v.P == [2]float64{} {
		return ""
	}
	return fmt.Sprintf("%g,%g", v.P[0], v.P[1])
}

func (v RatioValue) Set(s string) error {
	as, bs, ok := pair(s, ",")
	a, errA := strconv.ParseFloat(as, 64)
	b, errB := strconv.ParseFloat(bs, 64)
	if !ok || errA != nil || errB != nil || a <= 0 || b < a {
		return fmt.Errorf("MIN,MAX with 0 < MIN ≤ MAX, e.g. 0.5,2")
	}
	*v.P = [2]float64{a, b}
	return nil
}

func (RatioValue) Type() string { return "MIN,MAX" }

// IgnoreValue is an optional mask value ("" while unset: the dataset's).
type IgnoreValue struct{ P **int }

func (v IgnoreValue) String() string {
	if *v.P == nil {
		return ""
	}
	return fmt.Sprint(**v.P)
}

func (v IgnoreValue) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 || n > 255 {
		return fmt.Errorf("a mask value, 0–255")
	}
	*v.P = &n
	return nil
}

func (IgnoreValue) Type() string { return "N" }
