package nn

import (
	"fmt"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// A trace is the inference graph the engine runs: batch norms and the residual sum folded into
// the convolutions, every layer after its inputs, parameters by name.
func TestTraceOfTinyModel(t *testing.T) {
	net := NewNet(tinyModel{classes: 3}, 1)
	tr, err := net.Trace(tensor.Shape{1, 3, 11, 9})
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		name, op, in string
		shape        string
	}
	stem := ConvSpec{Kernel: 3, Stride: 2, Pad: 1, Dilation: 1}
	ops := []want{
		{"stem.bn", fmt.Sprint(ConvOp{Spec: stem, BN: true, Eps: BNEps, ReLU: true}),
			"input stem.conv.weight stem.bn.weight stem.bn.bias stem.bn.running_mean stem.bn.running_var", "[1 4 6 5]"},
		{"res.add", fmt.Sprint(ConvOp{Spec: ConvSpec{Kernel: 3, Stride: 1, Pad: 1, Dilation: 1}, BN: true, Eps: BNEps, Add: true, ReLU: true}),
			"0 res.conv.weight res.bn.weight res.bn.bias res.bn.running_mean res.bn.running_var 0", "[1 4 6 5]"},
		{"down.bn", fmt.Sprint(ConvOp{Spec: stem, BN: true, Eps: BNEps, ReLU: true}),
			"1 down.conv.weight down.bn.weight down.bn.bias down.bn.running_mean down.bn.running_var", "[1 6 3 3]"},
		{"up", fmt.Sprint(ResizeOp{H: 6, W: 5}), "2", "[1 6 6 5]"},
		{"cat", fmt.Sprint(ConcatOp{}), "1 3", "[1 10 6 5]"},
		{"cls", fmt.Sprint(ConvOp{Spec: ConvSpec{Kernel: 1, Stride: 1, Dilation: 1, Bias: true}}), "4 cls.weight cls.bias", "[1 3 6 5]"},
	}
	if len(tr.Layers) != len(ops) || tr.Output != len(ops)-1 {
		t.Fatalf("%d layers, output %d: %+v", len(tr.Layers), tr.Output, tr.Layers)
	}
	for i, l := range tr.Layers {
		var in []string
		for _, r := range l.In {
			switch {
			case r.Param != nil:
				in = append(in, r.Param.Name)
			case r.Layer < 0:
				in = append(in, "input")
			default:
				in = append(in, fmt.Sprint(r.Layer))
			}
		}
		got := want{l.Name, fmt.Sprint(l.Op), strings.Join(in, " "), fmt.Sprint(l.Shape)}
		if got != ops[i] {
			t.Errorf("layer %d: %+v\n want %+v", i, got, ops[i])
		}
	}
}

// avgModel ends in a kernel with no trace.
type avgModel struct{}

func (avgModel) Forward(b *Builder, x *G.Node) *G.Node {
	return b.GlobalAvgPool("gap", b.Conv("conv", x, 2, ConvSpec{Kernel: 1}))
}

func TestTraceRefusesUntraceableKernels(t *testing.T) {
	_, err := NewNet(avgModel{}, 1).Trace(tensor.Shape{1, 3, 4, 4})
	if err == nil || !strings.Contains(err.Error(), "layer gap: GlobalAvgPool cannot be traced") {
		t.Errorf("got %v", err)
	}
	if _, err := NewNet(avgModel{}, 1).Trace(tensor.Shape{3, 4, 4}); err == nil {
		t.Error("a 3-D input traced")
	}
}
