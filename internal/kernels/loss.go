package kernels

// #include "kernels.h"
import "C"

import (
	"fmt"
	"math"
)

// CrossEntropy is softmax cross-entropy over the class axis of N×C×HW logits against N×HW
// labels; pixels labelled Ignore do not count. The loss is the mean over counted pixels.
type CrossEntropy struct {
	N, C, HW int
	Ignore   int32
}

// Forward returns the mean loss and the number of counted pixels. When dlogits is not nil it
// receives scale·∂loss/∂logits. With no counted pixel the loss is 0 and the gradient is zero
// (PyTorch would return NaN, which would poison the weights).
func (ce CrossEntropy) Forward(logits []float32, labels []int32, scale float32, dlogits []float32) (float32, int, error) {
	total, count, err := ce.ForwardSum(logits, labels, 0, scale, dlogits)
	if err != nil || count == 0 {
		return 0, count, err
	}
	return float32(total / float64(count)), count, nil
}

// ForwardSum returns the summed (not averaged) loss of the counted pixels and their number;
// dlogits, when not nil, receives scale/denom·∂sum/∂logits, where denom 0 means the count (the
// mean's gradient). A rank of a data-parallel job passes the count of the whole batch as denom.
func (ce CrossEntropy) ForwardSum(logits []float32, labels []int32, denom int, scale float32, dlogits []float32) (float64, int, error) {
	count := 0
	for i, l := range labels {
		if l == ce.Ignore {
			continue
		}
		if l < 0 || int(l) >= ce.C {
			return 0, 0, fmt.Errorf("label %d at pixel %d is outside [0, %d) and is not the ignore index %d", l, i, ce.C, ce.Ignore)
		}
		count++
	}
	if denom == 0 {
		denom = count
	}
	if count == 0 || denom == 0 {
		if dlogits != nil {
			clear(dlogits)
		}
		return 0, count, nil
	}
	pixels := ce.N * ce.HW
	g := float32(float64(scale) / float64(denom))
	sum := func(lo, hi int) float64 { return ce.pixelLosses(logits, labels, g, dlogits, lo, hi) }
	if k := simd(); k != nil {
		sum = func(lo, hi int) float64 {
			return float64(C.segkit_softmax_ce(k, C.long(ce.C), C.long(ce.HW), ptr(logits), cint(labels), C.int(ce.Ignore),
				C.float(g), ptr(dlogits), C.long(lo), C.long(hi)))
		}
	} else if dlogits != nil {
		clear(dlogits)
	}
	parts := make([]float64, Workers)
	chunk := (pixels + Workers - 1) / Workers
	parallelFor(pixels, ce.C*8, func(lo, hi int) { parts[lo/chunk] = sum(lo, hi) })
	var total float64
	for _, s := range parts {
		total += s
	}
	return total, count, nil
}

// pixelLosses returns the summed loss of pixels [lo, hi) and adds g·(softmax − one-hot) to
// dlogits (when not nil; zero for ignored pixels).
func (ce CrossEntropy) pixelLosses(logits []float32, labels []int32, g float32, dlogits []float32, lo, hi int) float64 {
	var sum float64
	for p := lo; p < hi; p++ {
		label := labels[p]
		if label == ce.Ignore {
			continue
		}
		n, i := p/ce.HW, p%ce.HW
		base := n*ce.C*ce.HW + i
		peak := float32(math.Inf(-1))
		for c := 0; c < ce.C; c++ {
			peak = max(peak, logits[base+c*ce.HW])
		}
		var z float64
		for c := 0; c < ce.C; c++ {
			z += math.Exp(float64(logits[base+c*ce.HW] - peak))
		}
		lse := float64(peak) + math.Log(z)
		sum += lse - float64(logits[base+int(label)*ce.HW])
		if dlogits != nil {
			for c := 0; c < ce.C; c++ {
				prob := float32(math.Exp(float64(logits[base+c*ce.HW]) - lse))
				if c == int(label) {
					prob--
				}
				dlogits[base+c*ce.HW] = g * prob
			}
		}
	}
	return sum
}

// Argmax writes, per pixel of N×C×HW scores, the index of the largest class (the first on ties).
func Argmax(scores []float32, n, c, hw int, out []int32) {
	parallelFor(n*hw, c, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			base := (p/hw)*c*hw + p%hw
			best, arg := scores[base], int32(0)
			for k := 1; k < c; k++ {
				if v := scores[base+k*hw]; v > best {
					best, arg = v, int32(k)
				}
			}
			out[p] = arg
		}
	})
}
