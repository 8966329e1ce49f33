package nn

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/segkit/segkit/internal/numcheck"
)

// tinyModel has what HRNet needs of the engine: a stride-2 stem, a residual block (a node
// used twice, so gorgonia sums its gradients), a lower-resolution branch resized back up, a
// concat and a 1×1 classifier with bias.
type tinyModel struct{ classes int }

func (m tinyModel) Forward(b *Builder, x *G.Node) *G.Node {
	s := b.BatchNorm("stem.bn", b.Conv("stem.conv", x, 4, ConvSpec{Kernel: 3, Stride: 2, Pad: 1}), true)
	r := b.BatchNorm("res.bn", b.Conv("res.conv", s, 4, ConvSpec{Kernel: 3, Pad: 1}), false)
	s = b.Sum("res.add", true, s, r)
	low := b.BatchNorm("down.bn", b.Conv("down.conv", s, 6, ConvSpec{Kernel: 3, Stride: 2, Pad: 1}), true)
	h, w := b.HW(s)
	cat := b.Concat("cat", s, b.Resize("up", low, h, w))
	return b.Conv("cls", cat, m.classes, ConvSpec{Kernel: 1, Bias: true})
}

func randLabels(rng *rand.Rand, classes int, shape ...int) *tensor.Dense {
	l := make([]int32, shape[0]*shape[1]*shape[2])
	for i := range l {
		l[i] = int32(rng.IntN(classes))
		if rng.IntN(10) == 0 {
			l[i] = IgnoreIndex
		}
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(l))
}

// The whole training path (gorgonia.Grad with summed gradients, the executor's shared
// buffers) against finite differences of the loss in every parameter tensor.
func TestTrainStepFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	net := NewNet(tinyModel{classes: 3}, 1)
	x, labels := randTensor(rng, 1, 2, 3, 11, 9), randLabels(rng, 3, 2, 11, 9)
	gr, err := net.Graph(Training, x.Shape())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gr.Step(x, labels); err != nil {
		t.Fatal(err)
	}
	var params []*Param
	var grads [][]float32
	for _, p := range net.Params.All() {
		if !p.Buffer {
			if p.Grad == nil {
				t.Fatalf("%s has no gradient", p.Name)
			}
			params = append(params, p)
			grads = append(grads, append([]float32(nil), p.Grad...))
		}
	}
	loss := func() float64 {
		l, err := gr.Step(x, labels)
		if err != nil {
			t.Fatal(err)
		}
		return float64(l.Total)
	}
	const h = 5e-4 // small, so that few ReLU kinks fall inside ±h; the loss is exact to ~1e-7
	for i, p := range params {
		g := grads[i]
		peak := numcheck.Peak(g)
		w := p.Data()
		for s := 0; s < 4; s++ {
			j := rng.IntN(len(w))
			orig := w[j]
			w[j] = orig + h
			up := loss()
			w[j] = orig - h
			down := loss()
			w[j] = orig
			num := (up - down) / (2 * h)
			if !numcheck.Close(num, float64(g[j]), 0.03*peak+1e-3) {
				t.Errorf("%s[%d]: symbolic %.5g, finite difference %.5g (peak %.3g)", p.Name, j, g[j], num, peak)
			}
		}
	}
}

func trainStep(t *testing.T, net *Net, x, labels *tensor.Dense) {
	t.Helper()
	if _, err := net.TrainStep(x, labels); err != nil {
		t.Fatal(err)
	}
}

// Running statistics belong to the net, not to a graph: they continue across a rebuild for a
// new input size. Without weight updates the batch means depend on the input alone, so a step
// on A then B must give 0.9·(after A alone) + (after B alone) for the running mean.
func TestRunningStatsSurviveRebuild(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	xa, la := randTensor(rng, 1, 2, 3, 12, 12), randLabels(rng, 3, 2, 12, 12)
	xb, lb := randTensor(rng, 1, 2, 3, 9, 13), randLabels(rng, 3, 2, 9, 13)
	both, onlyA, onlyB := NewNet(tinyModel{3}, 1), NewNet(tinyModel{3}, 1), NewNet(tinyModel{3}, 1)
	trainStep(t, both, xa, la)
	trainStep(t, both, xb, lb)
	trainStep(t, onlyA, xa, la)
	trainStep(t, onlyB, xb, lb)
	for _, name := range []string{"stem.bn", "down.bn"} {
		m, ma, mb := both.Params.Get(name+".running_mean").Data(), onlyA.Params.Get(name+".running_mean").Data(), onlyB.Params.Get(name+".running_mean").Data()
		v, va, vb := both.Params.Get(name+".running_var").Data(), onlyA.Params.Get(name+".running_var").Data(), onlyB.Params.Get(name+".running_var").Data()
		for c := range m {
			if !numcheck.Close(float64(m[c]), float64(0.9*ma[c]+mb[c]), 1e-5) {
				t.Errorf("%s running_mean[%d] = %v, want 0.9·%v + %v", name, c, m[c], ma[c], mb[c])
			}
			if !numcheck.Close(float64(v[c]), float64(0.9*va[c]+vb[c]-0.9), 1e-5) {
				t.Errorf("%s running_var[%d] = %v, want 0.9·%v + %v − 0.9", name, c, v[c], va[c], vb[c])
			}
		}
	}
}

// Weights and SGD momentum carry over to a new graph, and each shape's graph is built once.
func TestGraphCacheCarriesWeightsAndMomentum(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	net := NewNet(tinyModel{3}, 1)
	builds := 0
	net.OnBuild = func(string, time.Duration) { builds++ }
	opt := &SGD{LR: 0.1, Momentum: 0.9, WeightDecay: 1e-4}
	shapes := [][2]int{{12, 12}, {9, 13}, {12, 12}, {9, 13}}
	for i, s := range shapes {
		p := net.Params.Get("stem.conv.weight")
		var w0, v0 []float32
		if p != nil {
			w0, v0 = append([]float32(nil), p.Data()...), append([]float32(nil), p.Velocity...)
		}
		trainStep(t, net, randTensor(rng, 1, 2, 3, s[0], s[1]), randLabels(rng, 3, 2, s[0], s[1]))
		p = net.Params.Get("stem.conv.weight")
		g := append([]float32(nil), p.Grad...)
		opt.Step(net.Params)
		if i == 0 {
			continue
		}
		for j, w := range p.Data() {
			v := 0.9*v0[j] + g[j] + 1e-4*w0[j]
			if want := w0[j] - 0.1*v; !numcheck.Close(float64(w), float64(want), 1e-6) {
				t.Fatalf("step %d: weight %d = %v, want %v (from the previous step's weight and momentum)", i, j, w, want)
			}
		}
	}
	if builds != 2 {
		t.Fatalf("%d graph builds for 2 input shapes", builds)
	}
}

// Rebuilding for new shapes over and over keeps memory flat: evicted graphs are freed.
func TestRebuildMemoryIsFlat(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	net := NewNet(tinyModel{3}, 1)
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	var base uint64
	for i := 0; i < 40; i++ {
		s := 24 + i%8 // 8 shapes, Keep 2: every step builds a graph
		trainStep(t, net, randTensor(rng, 1, 2, 3, s, s), randLabels(rng, 3, 2, s, s))
		if i == 9 {
			base = heap()
		}
	}
	if now := heap(); now > base+base/5+1<<20 {
		t.Fatalf("heap grew from %d to %d bytes over 30 rebuilds", base, now)
	} else {
		t.Logf("heap after 10 rebuilds %d kB, after 40 %d kB", base>>10, now>>10)
	}
}

type badModel struct {
	fn func(b *Builder, x *G.Node) *G.Node
}

func (m badModel) Forward(b *Builder, x *G.Node) *G.Node { return m.fn(b, x) }

// Invalid models and inputs give errors that name the layer and the shapes; nothing panics.
func TestErrorsNameLayerAndShapes(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	x := randTensor(rng, 1, 2, 3, 8, 8)
	for _, c := range []struct {
		name  string
		model Model
		want  []string
	}{
		{"sum of different sizes", badModel{func(b *Builder, x *G.Node) *G.Node {
			a := b.Conv("a", x, 4, ConvSpec{Kernel: 3, Pad: 1})
			d := b.Conv("down", x, 4, ConvSpec{Kernel: 3, Stride: 2, Pad: 1})
			return b.Sum("fuse.0", false, a, d)
		}}, []string{"fuse.0", "(2, 4, 8, 8)", "(2, 4, 4, 4)"}},
		{"kernel larger than the input", badModel{func(b *Builder, x *G.Node) *G.Node {
			return b.Conv("big", x, 4, ConvSpec{Kernel: 11})
		}}, []string{"big", "kernel 11", "8×8"}},
		{"negative padding", badModel{func(b *Builder, x *G.Node) *G.Node {
			return b.Conv("neg", x, 4, ConvSpec{Kernel: 3, Pad: -1})
		}}, []string{"neg", "padding -1"}},
		{"name reused with another shape", badModel{func(b *Builder, x *G.Node) *G.Node {
			a := b.Conv("same", x, 4, ConvSpec{Kernel: 3, Pad: 1})
			return b.Conv("same", a, 4, ConvSpec{Kernel: 3, Pad: 1})
		}}, []string{"same.weight", "(4, 3, 3, 3)", "(4, 4, 3, 3)"}},
		{"concat of different sizes", badModel{func(b *Builder, x *G.Node) *G.Node {
			d := b.Conv("down", x, 4, ConvSpec{Kernel: 3, Stride: 2, Pad: 1})
			return b.Concat("cat", x, d)
		}}, []string{"cat", "only channels may differ"}},
		{"resize to nothing", badModel{func(b *Builder, x *G.Node) *G.Node {
			return b.Resize("shrink", x, 0, 4)
		}}, []string{"shrink", "0×4"}},
	} {
		_, err := NewNet(c.model, 1).TrainStep(x, randLabels(rng, 3, 2, 8, 8))
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", c.name, err, w)
			}
		}
	}

	net := NewNet(tinyModel{3}, 1)
	if _, err := net.TrainStep(x, randLabels(rng, 3, 3, 8, 8)); err == nil || !strings.Contains(err.Error(), "labels") {
		t.Errorf("labels for 3 images, input of 2: %v", err)
	}
	bad := randLabels(rng, 3, 2, 8, 8)
	bad.Data().([]int32)[5] = 7
	if _, err := net.TrainStep(x, bad); err == nil || !strings.Contains(err.Error(), "label 7") {
		t.Errorf("label outside the classes: %v", err)
	}
	if _, err := net.TrainStep(randTensor(rng, 1, 1, 3, 1, 1), randLabels(rng, 3, 1, 1, 1)); err == nil ||
		!strings.Contains(err.Error(), "more than one value per channel") {
		t.Errorf("batch norm on one value per channel: %v", err)
	}
	if _, err := net.Predict(tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(3, 8, 8))); err == nil {
		t.Error("a 3-D input gave no error")
	}
}

func TestArgmax(t *testing.T) {
	// N=1, C=3, 2×2: per pixel the class with the highest score, the first on ties.
	scores := tensor.New(tensor.WithShape(1, 3, 2, 2), tensor.WithBacking([]float32{
		0, 5, 1, -1,
		2, 5, 0, -3,
		1, 4, 0, -2,
	}))
	got, err := Argmax(scores)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int32{1, 0, 0, 0}; !slices.Equal(got.Data().([]int32), want) || !got.Shape().Eq(tensor.Shape{1, 2, 2}) {
		t.Errorf("argmax = %v %v, want %v (1, 2, 2)", got.Data(), got.Shape(), want)
	}
	if _, err := Argmax(tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(3, 2, 2))); err == nil {
		t.Error("3-D scores accepted")
	}
}

// The memory plan never overlaps values alive at once (else the finite-difference and golden
// tests would fail) and stays close to the lower bound, the peak of live values.
func TestMemoryPlanNearPeak(t *testing.T) {
	net := NewNet(tinyModel{3}, 1)
	gr, err := net.Graph(Training, tensor.Shape{2, 3, 33, 47})
	if err != nil {
		t.Fatal(err)
	}
	plan, peak := gr.ActivationBytes(), gr.PeakLiveBytes()
	if plan < peak || float64(plan) > 1.25*float64(peak) {
		t.Errorf("planned %d bytes for a peak of %d", plan, peak)
	}
	if net.ActivationBytes() < plan {
		t.Errorf("the arena (%d bytes) is smaller than the graph's plan (%d)", net.ActivationBytes(), plan)
	}
}

// TestInferenceFolding checks that an inference graph runs conv (+bias) → BN (+ReLU) as one
// kernel, with residual sums of two or three terms in its epilogue, that a convolution read
// elsewhere too is still computed, and that every output matches the unfused graph's.
func TestInferenceFolding(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	ps := NewParams(1)
	build := func() (*Program, []*G.Node, map[string]int) {
		b := NewBuilder(ps, false)
		x := b.Const("x", []int{2, 16, 40, 40}, randTensor(rand.New(rand.NewPCG(6, 6)), 1, 2, 16, 40, 40).Float32s())
		spec := ConvSpec{Kernel: 3, Pad: 1}
		other := b.Conv("other", x, 24, spec)
		outs := []*G.Node{
			b.BatchNorm("bn", b.Conv("conv", x, 24, spec), true),
			b.BatchNorm("bn2", other, false),
			b.Sum("res", true, b.BatchNorm("bn3", b.Conv("conv3", x, 16, spec), false), x),
			b.Sum("three", true, x, b.BatchNorm("bn4", b.Conv("conv4", x, 16, spec), false), x),
			b.BatchNorm("bn5", b.Conv("bias", x, 8, ConvSpec{Kernel: 1, Bias: true}), true),
			b.Sum("also", false, other, other),
		}
		if b.Err() != nil {
			t.Fatal(b.Err())
		}
		p, err := Compile(b.Graph(), outs...)
		if err != nil {
			t.Fatal(err)
		}
		ops := map[string]int{}
		for _, n := range p.p.nodes {
			if n.Op() != nil {
				kind, _, _ := strings.Cut(n.Op().String(), "(")
				ops[kind]++
			}
		}
		return p, outs, ops
	}
	run := func(p *Program, outs []*G.Node) [][]float32 {
		if err := p.Run(); err != nil {
			t.Fatal(err)
		}
		var vals [][]float32
		for _, o := range outs {
			vals = append(vals, slices.Clone(Floats(p.Value(o))))
		}
		return vals
	}
	build() // creates the parameters; give the batch norms non-trivial statistics and a bias
	for _, q := range ps.All() {
		for i := range q.Data() {
			q.Data()[i] += float32(rng.Float64()) // running variances stay positive
		}
	}
	p, outs, ops := build()
	got := run(p, outs)
	if ops["Conv2dBatchNorm"] != 5 || ops["Conv2d"] != 1 || ops["BatchNorm"] != 0 || ops["Sum"] != 2 {
		t.Errorf("program runs %v; want 5 Conv2dBatchNorm, the conv the last sum reads, the sums x+x and also", ops)
	}
	foldInference = false
	defer func() { foldInference = true }()
	ref, refOuts, refOps := build()
	want := run(ref, refOuts)
	if refOps["Conv2dBatchNorm"] != 0 {
		t.Fatalf("reference graph folded: %v", refOps)
	}
	for i := range want {
		if worst, scale := numcheck.MaxDiff(got[i], want[i]); !(worst <= 3e-5*scale) {
			t.Errorf("output %d: max |folded − unfused| = %.3g (scale %.3g)", i, worst, scale)
		}
	}
}
