// Package onnxref evaluates ONNX graphs of the ops segkit's exporter writes, in float64,
// straight from the operator definitions of opset 13 (github.com/onnx/onnx docs/Operators.md).
// It is the tests' reference for exported graphs where no ONNX runtime is installed: it shares
// no code with segkit's kernels, so a graph that matches segkit here computes segkit's function
// by the ONNX definitions, not by segkit's implementation of them.
package onnxref

import (
	"fmt"
	"math"

	"github.com/segkit/segkit/onnx"
)

// Tensor is a value: float (F) or int64 (I, with Int set), row-major.
type Tensor struct {
	Shape []int
	F     []float64
	I     []int64
	Int   bool
}

func size(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Run evaluates the model's graph on the named inputs and returns every graph output.
func Run(m *onnx.Model, inputs map[string]Tensor) (map[string]Tensor, error) {
	vals := map[string]Tensor{}
	for _, t := range m.Graph.Initializers {
		v, err := fromONNX(t)
		if err != nil {
			return nil, err
		}
		vals[t.Name] = v
	}
	for name, t := range inputs {
		vals[name] = t
	}
	for _, n := range m.Graph.Nodes {
		in := make([]*Tensor, len(n.Inputs))
		for i, name := range n.Inputs {
			if name == "" {
				continue
			}
			v, ok := vals[name]
			if !ok {
				return nil, fmt.Errorf("node %s (%s): input %q is not defined before it", n.Name, n.Op, name)
			}
			in[i] = &v
		}
		out, err := run(&n, in)
		if err != nil {
			return nil, fmt.Errorf("node %s (%s): %w", n.Name, n.Op, err)
		}
		if len(n.Outputs) != 1 {
			return nil, fmt.Errorf("node %s (%s): %d outputs", n.Name, n.Op, len(n.Outputs))
		}
		vals[n.Outputs[0]] = out
	}
	outs := map[string]Tensor{}
	for _, o := range m.Graph.Outputs {
		v, ok := vals[o.Name]
		if !ok {
			return nil, fmt.Errorf("graph output %q is never computed", o.Name)
		}
		outs[o.Name] = v
	}
	return outs, nil
}

func fromONNX(t onnx.Tensor) (Tensor, error) {
	shape := make([]int, len(t.Dims))
	for i, d := range t.Dims {
		shape[i] = int(d)
	}
	switch t.Type {
	case onnx.Float:
		f, err := t.Floats()
		if err != nil {
			return Tensor{}, err
		}
		v := Tensor{Shape: shape, F: make([]float64, len(f))}
		for i, x := range f {
			v.F[i] = float64(x)
		}
		return v, nil
	case onnx.Int64:
		i, err := t.Int64s()
		return Tensor{Shape: shape, I: i, Int: true}, err
	}
	return Tensor{}, fmt.Errorf("initializer %s: %v is not evaluated", t.Name, t.Type)
}

func ints(n *onnx.Node, name string, def ...int64) []int64 {
	if a, ok := n.Attr(name); ok {
		return a.Ints
	}
	return def
}

func integer(n *onnx.Node, name string, def int64) int64 {
	if a, ok := n.Attr(name); ok {
		return a.Int
	}
	return def
}

func str(n *onnx.Node, name, def string) string {
	if a, ok := n.Attr(name); ok {
		return a.String
	}
	return def
}

func need(in []*Tensor, n int, float bool) error {
	if len(in) < n {
		return fmt.Errorf("%d inputs, want %d", len(in), n)
	}
	for i := 0; i < n; i++ {
		if in[i] == nil {
			return fmt.Errorf("input %d missing", i)
		}
		if float && in[i].Int {
			return fmt.Errorf("input %d is int64, want float", i)
		}
	}
	return nil
}

func run(n *onnx.Node, in []*Tensor) (Tensor, error) {
	switch n.Op {
	case "Identity":
		if err := need(in, 1, false); err != nil {
			return Tensor{}, err
		}
		return *in[0], nil
	case "Relu":
		if err := need(in, 1, true); err != nil {
			return Tensor{}, err
		}
		out := Tensor{Shape: in[0].Shape, F: make([]float64, len(in[0].F))}
		for i, x := range in[0].F {
			out.F[i] = max(x, 0)
		}
		return out, nil
	case "Add":
		if err := need(in, 2, true); err != nil {
			return Tensor{}, err
		}
		if fmt.Sprint(in[0].Shape) != fmt.Sprint(in[1].Shape) {
			return Tensor{}, fmt.Errorf("shapes %v and %v (no broadcasting here)", in[0].Shape, in[1].Shape)
		}
		out := Tensor{Shape: in[0].Shape, F: make([]float64, len(in[0].F))}
		for i := range out.F {
			out.F[i] = in[0].F[i] + in[1].F[i]
		}
		return out, nil
	case "Concat":
		return concat(in, int(integer(n, "axis", 0)))
	case "Conv":
		return conv(n, in)
	case "MaxPool", "AveragePool":
		return pool(n, in)
	case "Resize":
		return resize(n, in)
	case "Softmax":
		return softmax(in, int(integer(n, "axis", -1)))
	case "ArgMax":
		return argmax(in, int(integer(n, "axis", 0)), integer(n, "keepdims", 1) == 1, integer(n, "select_last_index", 0) == 1)
	case "Shape":
		if err := need(in, 1, false); err != nil {
			return Tensor{}, err
		}
		out := Tensor{Shape: []int{len(in[0].Shape)}, Int: true}
		for _, d := range in[0].Shape {
			out.I = append(out.I, int64(d))
		}
		return out, nil
	case "Slice":
		return slice(in)
	}
	return Tensor{}, fmt.Errorf("op %s is not evaluated", n.Op)
}

func concat(in []*Tensor, axis int) (Tensor, error) {
	if err := need(in, 1, false); err != nil {
		return Tensor{}, err
	}
	rank := len(in[0].Shape)
	if axis < 0 {
		axis += rank
	}
	if axis < 0 || axis >= rank {
		return Tensor{}, fmt.Errorf("axis %d of rank %d", axis, rank)
	}
	shape := append([]int(nil), in[0].Shape...)
	shape[axis] = 0
	for i, t := range in {
		if t == nil || t.Int != in[0].Int || len(t.Shape) != rank {
			return Tensor{}, fmt.Errorf("input %d does not match input 0", i)
		}
		for d := range t.Shape {
			if d != axis && t.Shape[d] != in[0].Shape[d] {
				return Tensor{}, fmt.Errorf("input %d has shape %v, input 0 %v", i, t.Shape, in[0].Shape)
			}
		}
		shape[axis] += t.Shape[axis]
	}
	outer, inner := size(shape[:axis]), size(shape[axis+1:])
	out := Tensor{Shape: shape, Int: in[0].Int}
	for o := 0; o < outer; o++ {
		for _, t := range in {
			chunk := t.Shape[axis] * inner
			if t.Int {
				out.I = append(out.I, t.I[o*chunk:(o+1)*chunk]...)
			} else {
				out.F = append(out.F, t.F[o*chunk:(o+1)*chunk]...)
			}
		}
	}
	return out, nil
}

func conv(n *onnx.Node, in []*Tensor) (Tensor, error) {
	if err := need(in, 2, true); err != nil {
		return Tensor{}, err
	}
	x, w := in[0], in[1]
	if len(x.Shape) != 4 || len(w.Shape) != 4 || w.Shape[1] != x.Shape[1] {
		return Tensor{}, fmt.Errorf("input %v and weight %v", x.Shape, w.Shape)
	}
	if integer(n, "group", 1) != 1 {
		return Tensor{}, fmt.Errorf("grouped convolutions are not evaluated")
	}
	N, C, H, W := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	K, kh, kw := w.Shape[0], w.Shape[2], w.Shape[3]
	st := ints(n, "strides", 1, 1)
	pd := ints(n, "pads", 0, 0, 0, 0)
	dl := ints(n, "dilations", 1, 1)
	if ks := ints(n, "kernel_shape", int64(kh), int64(kw)); ks[0] != int64(kh) || ks[1] != int64(kw) {
		return Tensor{}, fmt.Errorf("kernel_shape %v, weight %v", ks, w.Shape)
	}
	oh := (H+int(pd[0]+pd[2])-int(dl[0])*(kh-1)-1)/int(st[0]) + 1
	ow := (W+int(pd[1]+pd[3])-int(dl[1])*(kw-1)-1)/int(st[1]) + 1
	out := Tensor{Shape: []int{N, K, oh, ow}, F: make([]float64, N*K*oh*ow)}
	var bias []float64
	if len(in) > 2 && in[2] != nil {
		bias = in[2].F
	}
	for b := 0; b < N; b++ {
		for k := 0; k < K; k++ {
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					var s float64
					if bias != nil {
						s = bias[k]
					}
					for c := 0; c < C; c++ {
						for u := 0; u < kh; u++ {
							y := i*int(st[0]) - int(pd[0]) + u*int(dl[0])
							if y < 0 || y >= H {
								continue
							}
							for v := 0; v < kw; v++ {
								xx := j*int(st[1]) - int(pd[1]) + v*int(dl[1])
								if xx < 0 || xx >= W {
									continue
								}
								s += x.F[((b*C+c)*H+y)*W+xx] * w.F[((k*C+c)*kh+u)*kw+v]
							}
						}
					}
					out.F[((b*K+k)*oh+i)*ow+j] = s
				}
			}
		}
	}
	return out, nil
}

func pool(n *onnx.Node, in []*Tensor) (Tensor, error) {
	if err := need(in, 1, true); err != nil {
		return Tensor{}, err
	}
	x := in[0]
	if len(x.Shape) != 4 {
		return Tensor{}, fmt.Errorf("input %v", x.Shape)
	}
	ks := ints(n, "kernel_shape")
	st := ints(n, "strides", 1, 1)
	if len(ks) != 2 || len(st) != 2 {
		return Tensor{}, fmt.Errorf("kernel_shape %v, strides %v", ks, st)
	}
	for _, p := range ints(n, "pads", 0, 0, 0, 0) {
		if p != 0 {
			return Tensor{}, fmt.Errorf("padded pools are not evaluated")
		}
	}
	N, C, H, W := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	oh, ow := (H-int(ks[0]))/int(st[0])+1, (W-int(ks[1]))/int(st[1])+1
	out := Tensor{Shape: []int{N, C, oh, ow}, F: make([]float64, N*C*oh*ow)}
	for p := 0; p < N*C; p++ {
		for i := 0; i < oh; i++ {
			for j := 0; j < ow; j++ {
				m, s := math.Inf(-1), 0.0
				for u := 0; u < int(ks[0]); u++ {
					for v := 0; v < int(ks[1]); v++ {
						val := x.F[(p*H+i*int(st[0])+u)*W+j*int(st[1])+v]
						m, s = max(m, val), s+val
					}
				}
				if n.Op == "AveragePool" {
					m = s / float64(ks[0]*ks[1])
				}
				out.F[(p*oh+i)*ow+j] = m
			}
		}
	}
	return out, nil
}

// resize is Resize-13 in linear mode with explicit sizes on the last two axes: output index x
// reads the input at x_original (half_pixel: (x + 0.5)/scale − 0.5, scale = out/in;
// align_corners: x·(in−1)/(out−1)), interpolating linearly between its neighbours, the
// coordinate clamped to the input (the definition's edge padding).
func resize(n *onnx.Node, in []*Tensor) (Tensor, error) {
	if err := need(in, 1, true); err != nil {
		return Tensor{}, err
	}
	if len(in) != 4 || in[3] == nil || !in[3].Int || (in[2] != nil && len(in[2].F) > 0) {
		return Tensor{}, fmt.Errorf("only explicit sizes are evaluated")
	}
	if m := str(n, "mode", "nearest"); m != "linear" {
		return Tensor{}, fmt.Errorf("mode %q is not evaluated", m)
	}
	mode := str(n, "coordinate_transformation_mode", "half_pixel")
	x, sizes := in[0], in[3].I
	if len(x.Shape) != 4 || len(sizes) != 4 || sizes[0] != int64(x.Shape[0]) || sizes[1] != int64(x.Shape[1]) {
		return Tensor{}, fmt.Errorf("sizes %v for input %v: only the last two axes are resized", sizes, x.Shape)
	}
	H, W, oh, ow := x.Shape[2], x.Shape[3], int(sizes[2]), int(sizes[3])
	if oh < 1 || ow < 1 {
		return Tensor{}, fmt.Errorf("sizes %v", sizes)
	}
	taps := func(in, out int) ([]int, []int, []float64, error) {
		i0, i1, t := make([]int, out), make([]int, out), make([]float64, out)
		for o := 0; o < out; o++ {
			var u float64
			switch mode {
			case "half_pixel":
				u = (float64(o)+0.5)/(float64(out)/float64(in)) - 0.5
			case "align_corners":
				if out > 1 {
					u = float64(o) * float64(in-1) / float64(out-1)
				}
			default:
				return nil, nil, nil, fmt.Errorf("coordinate_transformation_mode %q is not evaluated", mode)
			}
			u = min(max(u, 0), float64(in-1))
			f := math.Floor(u)
			i0[o], i1[o], t[o] = int(f), min(int(f)+1, in-1), u-f
		}
		return i0, i1, t, nil
	}
	y0, y1, ty, err := taps(H, oh)
	if err != nil {
		return Tensor{}, err
	}
	x0, x1, tx, _ := taps(W, ow)
	planes := x.Shape[0] * x.Shape[1]
	out := Tensor{Shape: []int{x.Shape[0], x.Shape[1], oh, ow}, F: make([]float64, planes*oh*ow)}
	for p := 0; p < planes; p++ {
		src := x.F[p*H*W : (p+1)*H*W]
		for i := 0; i < oh; i++ {
			for j := 0; j < ow; j++ {
				top := src[y0[i]*W+x0[j]]*(1-tx[j]) + src[y0[i]*W+x1[j]]*tx[j]
				bottom := src[y1[i]*W+x0[j]]*(1-tx[j]) + src[y1[i]*W+x1[j]]*tx[j]
				out.F[(p*oh+i)*ow+j] = top*(1-ty[i]) + bottom*ty[i]
			}
		}
	}
	return out, nil
}

// axisSplit returns the sizes before, along and after axis.
func axisSplit(shape []int, axis int) (int, int, int, error) {
	if axis < 0 {
		axis += len(shape)
	}
	if axis < 0 || axis >= len(shape) {
		return 0, 0, 0, fmt.Errorf("axis %d of rank %d", axis, len(shape))
	}
	return size(shape[:axis]), shape[axis], size(shape[axis+1:]), nil
}

func softmax(in []*Tensor, axis int) (Tensor, error) {
	if err := need(in, 1, true); err != nil {
		return Tensor{}, err
	}
	outer, n, inner, err := axisSplit(in[0].Shape, axis)
	if err != nil {
		return Tensor{}, err
	}
	out := Tensor{Shape: in[0].Shape, F: make([]float64, len(in[0].F))}
	for o := 0; o < outer; o++ {
		for i := 0; i < inner; i++ {
			m := math.Inf(-1)
			for k := 0; k < n; k++ {
				m = max(m, in[0].F[(o*n+k)*inner+i])
			}
			var z float64
			for k := 0; k < n; k++ {
				z += math.Exp(in[0].F[(o*n+k)*inner+i] - m)
			}
			for k := 0; k < n; k++ {
				out.F[(o*n+k)*inner+i] = math.Exp(in[0].F[(o*n+k)*inner+i]-m) / z
			}
		}
	}
	return out, nil
}

func argmax(in []*Tensor, axis int, keep, last bool) (Tensor, error) {
	if err := need(in, 1, true); err != nil {
		return Tensor{}, err
	}
	outer, n, inner, err := axisSplit(in[0].Shape, axis)
	if err != nil {
		return Tensor{}, err
	}
	if axis < 0 {
		axis += len(in[0].Shape)
	}
	var shape []int
	for d, s := range in[0].Shape {
		if d != axis {
			shape = append(shape, s)
		} else if keep {
			shape = append(shape, 1)
		}
	}
	out := Tensor{Shape: shape, I: make([]int64, outer*inner), Int: true}
	for o := 0; o < outer; o++ {
		for i := 0; i < inner; i++ {
			best := 0
			for k := 1; k < n; k++ {
				v, b := in[0].F[(o*n+k)*inner+i], in[0].F[(o*n+best)*inner+i]
				if v > b || last && v == b {
					best = k
				}
			}
			out.I[o*inner+i] = int64(best)
		}
	}
	return out, nil
}

// slice is Slice-10+ on a 1-D tensor (starts, ends, optional axes 0 and steps 1).
func slice(in []*Tensor) (Tensor, error) {
	if err := need(in, 3, false); err != nil {
		return Tensor{}, err
	}
	x := in[0]
	if len(x.Shape) != 1 || !in[1].Int || !in[2].Int || len(in[1].I) != 1 || len(in[2].I) != 1 {
		return Tensor{}, fmt.Errorf("only 1-D slices are evaluated")
	}
	if len(in) > 4 && in[4] != nil && (len(in[4].I) != 1 || in[4].I[0] != 1) {
		return Tensor{}, fmt.Errorf("only step 1 is evaluated")
	}
	n := int64(x.Shape[0])
	clamp := func(v int64) int64 {
		if v < 0 {
			v += n
		}
		return min(max(v, 0), n)
	}
	s, e := clamp(in[1].I[0]), clamp(in[2].I[0])
	e = max(e, s)
	out := Tensor{Shape: []int{int(e - s)}, Int: x.Int}
	if x.Int {
		out.I = append([]int64(nil), x.I[s:e]...)
	} else {
		out.F = append([]float64(nil), x.F[s:e]...)
	}
	return out, nil
}
