package main

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

// cropValue is --crop H or HxW: Config.Crop (the height) and CropW (0 when square).
type cropValue struct{ c *segmentation.Config }

func (v cropValue) String() string {
	if v.c.CropW == 0 || v.c.CropW == v.c.Crop {
		return fmt.Sprint(v.c.Crop)
	}
	return fmt.Sprintf("%dx%d", v.c.Crop, v.c.CropW)
}

func (v cropValue) Set(s string) error {
	hs, ws, two := pair(s, "x")
	h, err := positive(hs)
	w := h
	if err == nil && two {
		w, err = positive(ws)
	}
	if err != nil {
		return fmt.Errorf("H or HxW: %w", err)
	}
	v.c.Crop, v.c.CropW = h, 0
	if w != h {
		v.c.CropW = w
	}
	return nil
}

func (cropValue) Type() string { return "H[xW]" }

// scaleValue is LONGxSHORT ("" while zero: the default applies).
type scaleValue struct{ p *[2]int }

func (v scaleValue) String() string {
	if *v.p == [2]int{} {
		return ""
	}
	return fmt.Sprintf("%dx%d", v.p[0], v.p[1])
}

func (v scaleValue) Set(s string) error {
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
	*v.p = [2]int{long, short}
	return nil
}

func (scaleValue) Type() string { return "LONGxSHORT" }

// ratioValue is MIN,MAX.
type ratioValue struct{ p *[2]float64 }

func (v ratioValue) String() string {
	if *v.p == [2]float64{} {
		return ""
	}
	return fmt.Sprintf("%g,%g", v.p[0], v.p[1])
}

func (v ratioValue) Set(s string) error {
	as, bs, ok := pair(s, ",")
	a, errA := strconv.ParseFloat(as, 64)
	b, errB := strconv.ParseFloat(bs, 64)
	if !ok || errA != nil || errB != nil || a <= 0 || b < a {
		return fmt.Errorf("MIN,MAX with 0 < MIN ≤ MAX, e.g. 0.5,2")
	}
	*v.p = [2]float64{a, b}
	return nil
}

func (ratioValue) Type() string { return "MIN,MAX" }

// ignoreValue is an optional mask value ("" while unset: the dataset's).
type ignoreValue struct{ p **int }

func (v ignoreValue) String() string {
	if *v.p == nil {
		return ""
	}
	return fmt.Sprint(**v.p)
}

func (v ignoreValue) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 || n > 255 {
		return fmt.Errorf("a mask value, 0–255")
	}
	*v.p = &n
	return nil
}

func (ignoreValue) Type() string { return "N" }
