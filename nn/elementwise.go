package nn

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/segkit/segkit/internal/kernels"
)

// sum: (x1, …, xn) of equal shapes → x1 + … + xn, then ReLU when relu is set.
type sum struct {
	n    int
	relu bool
}

func (k sum) Describe() string     { return fmt.Sprintf("Sum(%d relu=%t)", k.n, k.relu) }
func (k sum) Signature() []hm.Type { return Repeat(Tensor4, k.n+1) }

func (k sum) Shape(in []tensor.Shape) (tensor.Shape, error) {
	for i, s := range in {
		if err := want4("sum input", s); err != nil {
			return nil, err
		}
		if !s.Eq(in[0]) {
			return nil, fmt.Errorf("sum: input %d has shape %v, input 0 has %v", i, s, in[0])
		}
	}
	return in[0].Clone(), nil
}

func (k sum) Run(out G.Value, in []G.Value) error {
	xs := make([][]float32, len(in))
	for i, v := range in {
		xs[i] = Floats(v)
	}
	kernels.Sum(xs, Floats(out), k.relu)
	return nil
}

func (k sum) WRT() []bool { return AllTrue(k.n) }

func (k sum) Grads(_ G.Nodes, y, dy *G.Node) (G.Nodes, error) {
	g := dy
	if k.relu {
		var err error
		if g, err = Apply(reluGrad{}, y, dy); err != nil {
			return nil, err
		}
	}
	gs := make(G.Nodes, k.n)
	for i := range gs {
		gs[i] = g
	}
	return gs, nil
}

// reluGrad: (y, dy) → dy where y > 0, else 0.
type reluGrad struct{}

func (reluGrad) Describe() string     { return "ReLUGrad" }
func (reluGrad) Signature() []hm.Type { return []hm.Type{Tensor4, Tensor4, Tensor4} }

func (reluGrad) Shape(in []tensor.Shape) (tensor.Shape, error) {
	if !in[0].Eq(in[1]) {
		return nil, fmt.Errorf("relu gradient: y %v and dy %v differ", in[0], in[1])
	}
	return in[0].Clone(), nil
}

func (reluGrad) Run(out G.Value, in []G.Value) error {
	kernels.ReLUBackward(Floats(in[0]), Floats(in[1]), Floats(out))
	return nil
}

// concat: (x1, …, xn) with equal N, H, W → their channels stacked in order.
type concat struct{ n int }

func (k concat) Describe() string     { return fmt.Sprintf("Concat(%d)", k.n) }
func (k concat) Signature() []hm.Type { return Repeat(Tensor4, k.n+1) }

func (k concat) Shape(in []tensor.Shape) (tensor.Shape, error) {
	c := 0
	for i, s := range in {
		if err := want4("concat input", s); err != nil {
			return nil, err
		}
		if s[0] != in[0][0] || s[2] != in[0][2] || s[3] != in[0][3] {
			return nil, fmt.Errorf("concat: input %d has shape %v, input 0 has %v (only channels may differ)", i, s, in[0])
		}
		c += s[1]
	}
	return tensor.Shape{in[0][0], c, in[0][2], in[0][3]}, nil
}

func (k concat) Run(out G.Value, in []G.Value) error {
	n, c, h, w := nchw(out.Shape())
	to := 0
	for _, v := range in {
		ci := v.Shape()[1]
		kernels.CopyChannels(Floats(v), ci, 0, Floats(out), c, to, ci, n, h*w)
		to += ci
	}
	return nil
}

func (k concat) WRT() []bool { return AllTrue(k.n) }

func (k concat) Grads(in G.Nodes, _, dy *G.Node) (G.Nodes, error) {
	gs := make(G.Nodes, len(in))
	from := 0
	for i, x := range in {
		c := x.Shape()[1]
		var err error
		if gs[i], err = Apply(channelSlice{from, c}, dy); err != nil {
			return nil, err
		}
		from += c
	}
	return gs, nil
}

// channelSlice: x → channels [from, from+count) of x.
type channelSlice struct{ from, count int }

func (k channelSlice) Describe() string {
	return fmt.Sprintf("ChannelSlice(%d:%d)", k.from, k.from+k.count)
}
func (k channelSlice) Signature() []hm.Type { return []hm.Type{Tensor4, Tensor4} }

func (k channelSlice) Shape(in []tensor.Shape) (tensor.Shape, error) {
	if err := want4("channel slice input", in[0]); err != nil {
		return nil, err
	}
	if k.from < 0 || k.count < 1 || k.from+k.count > in[0][1] {
		return nil, fmt.Errorf("channel slice %d:%d outside %d channels", k.from, k.from+k.count, in[0][1])
	}
	return tensor.Shape{in[0][0], k.count, in[0][2], in[0][3]}, nil
}

func (k channelSlice) Run(out G.Value, in []G.Value) error {
	n, c, h, w := nchw(in[0].Shape())
	kernels.CopyChannels(Floats(in[0]), c, k.from, Floats(out), k.count, 0, k.count, n, h*w)
	return nil
}

// globalAvgPool: N×C×H×W → N×C×1×1, the mean of every plane.
type globalAvgPool struct{}

func (globalAvgPool) Describe() string     { return "GlobalAvgPool" }
func (globalAvgPool) Signature() []hm.Type { return []hm.Type{Tensor4, Tensor4} }

func (globalAvgPool) Shape(in []tensor.Shape) (tensor.Shape, error) {
	if err := want4("global average pool input", in[0]); err != nil {
		return nil, err
	}
	return tensor.Shape{in[0][0], in[0][1], 1, 1}, nil
}

func (globalAvgPool) Run(out G.Value, in []G.Value) error {
	_, _, h, w := nchw(in[0].Shape())
	kernels.PlaneMeans(Floats(in[0]), h*w, Floats(out))
	return nil
}

func (globalAvgPool) WRT() []bool { return []bool{true} }

func (globalAvgPool) Grads(in G.Nodes, _, dy *G.Node) (G.Nodes, error) {
	dx, err := Apply(spreadPlanes{in[0].Shape()}, dy)
	return G.Nodes{dx}, err
}

// spreadPlanes: dy N×C×1×1 → dx of shape x, each plane dy/(H·W).
type spreadPlanes struct{ x tensor.Shape }

func (k spreadPlanes) Describe() string     { return fmt.Sprintf("GlobalAvgPoolGrad(%v)", k.x) }
func (k spreadPlanes) Signature() []hm.Type { return []hm.Type{Tensor4, Tensor4} }

func (k spreadPlanes) Shape([]tensor.Shape) (tensor.Shape, error) { return k.x.Clone(), nil }

func (k spreadPlanes) Run(out G.Value, in []G.Value) error {
	kernels.SpreadPlanes(Floats(in[0]), k.x[2]*k.x[3], Floats(out))
	return nil
}
