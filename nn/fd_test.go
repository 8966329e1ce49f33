package nn

import (
	"fmt"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/segkit/segkit/internal/numcheck"
)

func randTensor(rng *rand.Rand, scale float64, shape ...int) *tensor.Dense {
	t := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(shape...))
	for i, v := 0, t.Float32s(); i < len(v); i++ {
		v[i] = float32(rng.NormFloat64() * scale)
	}
	return t
}

// dot returns Σ a·b in float64.
func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// checkFD compares k's symbolic gradients with central differences of L = Σ gy·k(ins) at a
// sample of coordinates of every differentiated input.
func checkFD(t *testing.T, name string, k Kernel, ins []G.Value, rng *rand.Rand) {
	t.Helper()
	y, err := (op{k}).Do(ins...)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var gy G.Value
	if y.Shape().IsScalar() {
		gy = G.NewF32(1.3)
	} else {
		gy = randTensor(rng, 1, y.Shape()...)
	}
	_, grads, err := runKernel(k, ins, gy)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	// loss returns L and the positions of zero outputs: a ReLU kink between the two probes
	// breaks the finite difference, so such coordinates are skipped.
	loss := func() (float64, string) {
		out, err := (op{k}).Do(ins...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		zeros := make([]byte, len(Floats(out)))
		for i, v := range Floats(out) {
			if v == 0 {
				zeros[i] = 1
			}
		}
		return dot(Floats(out), Floats(gy)), string(zeros)
	}
	const h = 1e-2
	for i, wrt := range (op{k}).DiffWRT(len(ins)) {
		if !wrt {
			continue
		}
		x, g := Floats(ins[i]), Floats(grads[i])
		peak := numcheck.Peak(g)
		checked := 0
		for try := 0; try < 60 && checked < 12; try++ {
			j := rng.IntN(len(x))
			orig := x[j]
			x[j] = orig + h
			up, zerosUp := loss()
			x[j] = orig - h
			down, zerosDown := loss()
			x[j] = orig
			if zerosUp != zerosDown {
				continue
			}
			checked++
			num := (up - down) / (2 * h)
			if !numcheck.Close(num, float64(g[j]), 2e-2*peak+1e-3) {
				t.Errorf("%s: input %d[%d]: symbolic %.5g, finite difference %.5g (peak %.3g)", name, i, j, g[j], num, peak)
			}
		}
		if checked < 4 {
			t.Errorf("%s: input %d: only %d coordinates away from ReLU kinks", name, i, checked)
		}
	}
}

func TestConvFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		x    []int
		k    int
		spec ConvSpec
	}{
		{[]int{2, 3, 7, 9}, 4, ConvSpec{Kernel: 3, Stride: 1, Pad: 1, Dilation: 1, Bias: true}},
		{[]int{2, 3, 9, 7}, 5, ConvSpec{Kernel: 3, Stride: 2, Pad: 1, Dilation: 1}},
		{[]int{1, 2, 8, 6}, 3, ConvSpec{Kernel: 3, Stride: 2, Pad: 1, Dilation: 1, Bias: true}},
		{[]int{1, 4, 11, 5}, 2, ConvSpec{Kernel: 3, Stride: 1, Pad: 2, Dilation: 2}},
		{[]int{2, 5, 5, 3}, 3, ConvSpec{Kernel: 1, Stride: 1, Pad: 0, Dilation: 1, Bias: true}},
		{[]int{1, 3, 6, 6}, 2, ConvSpec{Kernel: 1, Stride: 2, Pad: 0, Dilation: 1}},
		{[]int{1, 2, 5, 5}, 2, ConvSpec{Kernel: 5, Stride: 3, Pad: 2, Dilation: 1}},
		{[]int{1, 1, 1, 1}, 2, ConvSpec{Kernel: 3, Stride: 1, Pad: 1, Dilation: 1}},
	} {
		ins := []G.Value{randTensor(rng, 1, c.x...), randTensor(rng, 0.5, c.k, c.x[1], c.spec.Kernel, c.spec.Kernel)}
		if c.spec.Bias {
			ins = append(ins, randTensor(rng, 1, c.k))
		}
		checkFD(t, fmt.Sprintf("conv x%v %v", c.x, c.spec), conv2d{ConvSpec: c.spec}, ins, rng)
	}
}

func TestBatchNormFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, x := range [][]int{{2, 3, 5, 7}, {4, 2, 1, 3}, {1, 3, 3, 3}} {
		for _, train := range []bool{true, false} {
			for _, relu := range []bool{false, true} {
				c := x[1]
				st := &bnState{layer: "bn", train: train, relu: relu, eps: BNEps, momentum: BNMomentum,
					runMean: randTensor(rng, 0.1, c).Float32s(), runVar: make([]float32, c)}
				for i := range st.runVar {
					st.runVar[i] = 0.5 + rng.Float32()
				}
				ins := []G.Value{randTensor(rng, 2, x...), randTensor(rng, 0.5, c), randTensor(rng, 0.3, c)}
				checkFD(t, fmt.Sprintf("batchnorm x%v train=%t relu=%t", x, train, relu), batchNorm{st}, ins, rng)
			}
		}
	}
}

func TestResizeFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, c := range [][6]int{{1, 2, 5, 7, 9, 4}, {2, 1, 8, 8, 3, 3}, {1, 1, 1, 1, 4, 5}, {1, 3, 7, 3, 7, 3}, {1, 1, 6, 1, 2, 1}} {
		for _, align := range []bool{false, true} {
			checkFD(t, fmt.Sprintf("resize %v align_corners=%v", c, align), resize{c[4], c[5], align}, []G.Value{randTensor(rng, 1, c[0], c[1], c[2], c[3])}, rng)
		}
	}
}

func TestSumConcatFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	a, b, c := randTensor(rng, 1, 2, 3, 5, 3), randTensor(rng, 1, 2, 3, 5, 3), randTensor(rng, 1, 2, 3, 5, 3)
	checkFD(t, "sum", sum{3, false}, []G.Value{a, b, c}, rng)
	checkFD(t, "sum relu", sum{2, true}, []G.Value{a, b}, rng)
	checkFD(t, "concat", concat{2}, []G.Value{a, randTensor(rng, 1, 2, 4, 5, 3)}, rng)
	checkFD(t, "global average pool", globalAvgPool{}, []G.Value{c}, rng)
}

func TestCrossEntropyFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	logits := randTensor(rng, 2, 2, 5, 3, 7)
	labels := make([]int32, 2*3*7)
	for i := range labels {
		labels[i] = int32(rng.IntN(5))
		if rng.IntN(4) == 0 {
			labels[i] = IgnoreIndex
		}
	}
	checkFD(t, "cross-entropy", crossEntropy{}, []G.Value{logits, tensor.New(tensor.WithShape(2, 3, 7), tensor.WithBacking(labels))}, rng)
}
