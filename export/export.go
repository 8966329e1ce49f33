// Package export writes segkit models as ONNX graphs for onnxruntime, TensorRT and OpenCV DNN.
// It translates the inference graph the engine runs (nn.Trace), so the file computes what segkit
// computes: convolutions with their batch norms folded in (in float64), ReLU, Add, Concat,
// bilinear Resize with explicit sizes, and every DynOPool resize as a bilinear Resize to twice
// the learned size followed by a 2×2 max (or average) pool, which is that op exactly (see
// dynopool below). The input is the normalised image at a fixed size; the metadata carries
// what a deployment needs to prepare it and read the output.
package export

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strings"

	"gorgonia.org/tensor"

	"github.com/segkit/segkit/dynopool"
	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/nn"
	"github.com/segkit/segkit/onnx"
	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/segmentation/checkpoint"
	"github.com/segkit/segkit/voc"
)

// The format written: opset 13 is the first whose Resize takes its sizes with roi and scales
// left out, and what TensorRT 8 and OpenCV 4.6 load; IR version 7 goes with it.
const (
	Opset     = 13
	IRVersion = 7
)

// maxElements bounds every tensor of an exported graph: TensorRT refuses tensors of 2^31
// elements or more.
const maxElements = 1<<31 - 1

// Output is what the exported graph returns.
type Output string

// The outputs: logits (N×K×h×w float), softmax probabilities (N×K×h×w float), or the label of
// every pixel (N×1×h×w int64, the argmax).
const (
	Logits Output = "logits"
	Probs  Output = "probs"
	Labels Output = "labels"
)

// ParseOutput reads an output kind.
func ParseOutput(s string) (Output, error) {
	switch o := Output(s); o {
	case Logits, Probs, Labels:
		return o, nil
	}
	return "", fmt.Errorf("unknown output %q: logits, probs or labels", s)
}

// Options say what to export.
type Options struct {
	H, W     int    // input size; 0×0: DefaultSize of the checkpoint's config
	Batch    int    // images per run; 0: symbolic (the dimension named "N")
	Output   Output // "": logits
	Upsample bool   // resize the output to the input size (bilinear, as segkit's inference does)
}

// Model is a segkit model with what a checkpoint says about it.
type Model struct {
	HRNet *hrnet.Model
	Net   *nn.Net // with the model's weights
	State checkpoint.State
}

// DefaultSize is a checkpoint's test size: the training crop's shape rescaled as the test
// transform rescales images (keeping the aspect to fit the test scale), or the crop itself
// where the test protocol slides crop windows.
func DefaultSize(c segmentation.Config) (h, w int) {
	c = c.WithDefaults()
	h, w = c.CropSize()
	if c.EvalMode == segmentation.EvalSlide {
		return h, w
	}
	w, h = c.TestAugment().TestSize(w, h)
	return h, w
}

// Checkpoint reads a segkit checkpoint and exports its model.
func Checkpoint(path string, opt Options) (*onnx.Model, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	ck, err := checkpoint.LoadCheckpoint(path)
	if err != nil {
		return nil, fmt.Errorf("%w (export reads segkit checkpoints; convert a PyTorch model with 'segtrain import' first)", err)
	}
	if len(ck.State.Classes) == 0 {
		return nil, fmt.Errorf("%s: the checkpoint does not name its classes", path)
	}
	m, net, err := checkpoint.LoadModel(ck, len(ck.State.Classes))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if opt.H == 0 && opt.W == 0 {
		opt.H, opt.W = DefaultSize(ck.State.Config)
	}
	return ONNX(Model{HRNet: m, Net: net, State: ck.State}, opt)
}

// check reports options that cannot be exported.
func (o Options) check() error {
	if _, err := ParseOutput(string(o.Output)); err != nil {
		return err
	}
	if o.H < 1 || o.W < 1 {
		return fmt.Errorf("input size %d×%d: both sides must be positive", o.H, o.W)
	}
	if o.Batch < 0 {
		return fmt.Errorf("batch %d: positive, or 0 for a symbolic batch", o.Batch)
	}
	return nil
}

// ONNX translates the model at the options' input size.
func ONNX(m Model, opt Options) (*onnx.Model, error) {
	if opt.Output == "" {
		opt.Output = Logits
	}
	if err := opt.check(); err != nil {
		return nil, err
	}
	n := opt.Batch
	if n == 0 {
		n = 1 // the trace's batch; the graph's is symbolic
	}
	if int64(n)*3*int64(opt.H)*int64(opt.W) > maxElements {
		return nil, fmt.Errorf("input %d×3×%d×%d has 2^31 elements or more: too large for TensorRT", n, opt.H, opt.W)
	}
	tr, err := m.Net.Trace(tensor.Shape{n, 3, opt.H, opt.W})
	if err != nil {
		return nil, fmt.Errorf("the model cannot take a %d×%d input: %w", opt.H, opt.W, err)
	}
	g := newGraph(opt.Batch, string(opt.Output))
	in := onnx.Value{Name: "input", Type: onnx.Float, Shape: g.dims(3, opt.H, opt.W)}
	g.g.Inputs = []onnx.Value{in}
	g.taken[in.Name] = true
	out, err := g.trace(tr, in.Name)
	if err != nil {
		return nil, err
	}
	logits := tr.Layers[tr.Output].Shape
	c, h, w := logits[1], logits[2], logits[3]
	if opt.Upsample && (h != opt.H || w != opt.W) {
		h, w = opt.H, opt.W
		if int64(n)*int64(c)*int64(h)*int64(w) > maxElements {
			return nil, fmt.Errorf("the up-sampled output %d×%d×%d×%d has 2^31 elements or more: too large for TensorRT", n, c, h, w)
		}
		out = g.resize("upsample", out, c, h, w, m.HRNet.AlignCorners)
	}
	elem := onnx.Float
	switch opt.Output {
	case Probs:
		out = g.node("Softmax", "softmax", []string{out}, onnx.Int("axis", 1))
	case Labels:
		out = g.node("ArgMax", "argmax", []string{out}, onnx.Int("axis", 1), onnx.Int("keepdims", 1))
		c, elem = 1, onnx.Int64
	}
	g.output(out, string(opt.Output))
	g.g.Outputs = []onnx.Value{{Name: string(opt.Output), Type: elem, Shape: g.dims(c, h, w)}}
	g.g.Name = fmt.Sprintf("segkit HRNetV2-%s %s", m.HRNet.Name, m.HRNet.Resize)
	meta, err := metadata(m, opt, tr, [2]int{logits[2], logits[3]})
	if err != nil {
		return nil, err
	}
	return &onnx.Model{IRVersion: IRVersion, Opset: Opset, ProducerName: "segkit", ProducerVersion: Version(),
		DocString: docString(m, opt), Graph: g.g, Metadata: meta}, nil
}

// graph assembles the ONNX graph: unique value names, shared constants.
type graph struct {
	g      onnx.Graph
	batch  int             // 0: symbolic
	taken  map[string]bool // value and node names in use
	consts map[string]string
	nDim   string // symbolic batch: the 1-element int64 tensor holding N, once made
}

// newGraph starts a graph whose batch is batch (0: symbolic) and whose output will be named
// output.
func newGraph(batch int, output string) *graph {
	return &graph{batch: batch, taken: map[string]bool{output: true}, consts: map[string]string{}}
}

// unique returns base, or base with a number, unused so far.
func (g *graph) unique(base string) string {
	name := base
	for i := 1; g.taken[name]; i++ {
		name = fmt.Sprintf("%s_%d", base, i)
	}
	g.taken[name] = true
	return name
}

// dims is the shape N×c×h×w with the batch fixed or symbolic.
func (g *graph) dims(c, h, w int) []onnx.Dim {
	d := onnx.Dims(int64(g.batch), int64(c), int64(h), int64(w))
	if g.batch == 0 {
		d[0] = onnx.Dim{Param: "N"}
	}
	return d
}

// node adds a node with one output, named after it, and returns the output's name.
func (g *graph) node(op, name string, in []string, attrs ...onnx.Attr) string {
	out := g.unique(name)
	g.g.Nodes = append(g.g.Nodes, onnx.Node{Name: out, Op: op, Inputs: in, Outputs: []string{out}, Attrs: attrs})
	return out
}

// output makes value from the graph's output named to (reserved by newGraph): the last node's
// output renamed, or an Identity where the value comes from elsewhere.
func (g *graph) output(from, to string) {
	if n := len(g.g.Nodes); n > 0 && g.g.Nodes[n-1].Outputs[0] == from {
		g.g.Nodes[n-1].Outputs[0] = to
		return
	}
	g.g.Nodes = append(g.g.Nodes, onnx.Node{Name: to, Op: "Identity", Inputs: []string{from}, Outputs: []string{to}})
}

// initializer adds a constant tensor under a unique name based on its own.
func (g *graph) initializer(t onnx.Tensor) string {
	t.Name = g.unique(t.Name)
	g.g.Initializers = append(g.g.Initializers, t)
	return t.Name
}

// constant adds (once per value) an int64 vector.
func (g *graph) constant(v ...int64) string {
	key := fmt.Sprint(v)
	if name, ok := g.consts[key]; ok {
		return name
	}
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprint(x)
	}
	name := g.initializer(onnx.Int64Tensor("const_"+strings.Join(parts, "_"), []int64{int64(len(v))}, v))
	g.consts[key] = name
	return name
}

// sizes is Resize's sizes input for an N×c×h×w output. Resize's sizes cover every axis, so with
// a symbolic batch the graph reads N off its input (Shape, Slice) and prepends it.
func (g *graph) sizes(c, h, w int) string {
	if g.batch > 0 {
		return g.constant(int64(g.batch), int64(c), int64(h), int64(w))
	}
	key := fmt.Sprint("sizes", c, h, w)
	if name, ok := g.consts[key]; ok {
		return name
	}
	if g.nDim == "" {
		shape := g.node("Shape", "input_shape", []string{g.g.Inputs[0].Name})
		g.nDim = g.node("Slice", "batch", []string{shape, g.constant(0), g.constant(1)})
	}
	name := g.node("Concat", fmt.Sprintf("sizes_N_%d_%d_%d", c, h, w), []string{g.nDim, g.constant(int64(c), int64(h), int64(w))}, onnx.Int("axis", 0))
	g.consts[key] = name
	return name
}

// resize adds a bilinear Resize of x to N×c×h×w: half-pixel centres (PyTorch's
// align_corners=False), or corners onto corners. Always explicit sizes: scales give off-by-one
// sizes where h/H is not exact in float32.
func (g *graph) resize(name, x string, c, h, w int, alignCorners bool) string {
	mode := "half_pixel"
	if alignCorners {
		mode = "align_corners"
	}
	return g.node("Resize", name, []string{x, "", "", g.sizes(c, h, w)},
		onnx.String("mode", "linear"), onnx.String("coordinate_transformation_mode", mode))
}

// trace adds the trace's layers and returns the name of the logits.
func (g *graph) trace(tr *nn.Trace, input string) (string, error) {
	values := make([]string, len(tr.Layers))
	shapes := make([][]int, len(tr.Layers))
	for i, l := range tr.Layers {
		var size int64 = 1
		for _, d := range l.Shape {
			size *= int64(d)
		}
		if size > maxElements {
			return "", fmt.Errorf("layer %s: its output %v has 2^31 elements or more: too large for TensorRT", l.Name, l.Shape)
		}
		var ins []string
		var inShapes [][]int
		var params []*nn.Param
		for _, r := range l.In {
			switch {
			case r.Param != nil:
				params = append(params, r.Param)
			case r.Layer < 0:
				ins, inShapes = append(ins, input), append(inShapes, tr.Input)
			default:
				ins, inShapes = append(ins, values[r.Layer]), append(inShapes, shapes[r.Layer])
			}
		}
		var err error
		values[i], err = g.layer(l, ins, inShapes, params)
		if err != nil {
			return "", fmt.Errorf("layer %s: %w", l.Name, err)
		}
		shapes[i] = l.Shape
	}
	return values[tr.Output], nil
}

// layer adds the nodes of one traced layer.
func (g *graph) layer(l nn.Layer, ins []string, inShapes [][]int, params []*nn.Param) (string, error) {
	switch op := l.Op.(type) {
	case nn.ConvOp:
		return g.conv(l, op, ins, params)
	case nn.SumOp:
		if len(ins) == 0 {
			return "", errors.New("sum of nothing")
		}
		out := ins[0]
		for i, x := range ins[1:] {
			name := l.Name
			if i < len(ins)-2 {
				name = fmt.Sprintf("%s.add%d", l.Name, i+1)
			}
			out = g.node("Add", name, []string{out, x})
		}
		if op.ReLU {
			out = g.node("Relu", l.Name+".relu", []string{out})
		}
		return out, nil
	case nn.ConcatOp:
		return g.node("Concat", l.Name, ins, onnx.Int("axis", 1)), nil
	case nn.ResizeOp:
		if len(ins) != 1 {
			return "", fmt.Errorf("resize of %d inputs", len(ins))
		}
		return g.resize(l.Name, ins[0], l.Shape[1], op.H, op.W, op.AlignCorners), nil
	case dynopool.SampleOp:
		if len(ins) != 1 || len(inShapes[0]) != 4 {
			return "", fmt.Errorf("DynOPool of %d inputs", len(ins))
		}
		return g.dynopool(l.Name, ins[0], inShapes[0], op), nil
	}
	return "", fmt.Errorf("%T has no ONNX translation", l.Op)
}

// conv adds a Conv with the batch norm folded into its weight and bias (in float64), then the
// residual Add and the ReLU.
func (g *graph) conv(l nn.Layer, op nn.ConvOp, ins []string, params []*nn.Param) (string, error) {
	want, wantIn := 1, 1
	if op.Spec.Bias {
		want++
	}
	if op.BN {
		want += 4
	}
	if op.Add {
		wantIn++
	}
	if len(params) != want || len(ins) != wantIn {
		return "", fmt.Errorf("convolution with %d parameters and %d inputs, want %d and %d", len(params), len(ins), want, wantIn)
	}
	wt := params[0]
	shape := wt.Value.Shape()
	if len(shape) != 4 {
		return "", fmt.Errorf("convolution weight %s of shape %v", wt.Name, shape)
	}
	k := shape[0]
	per := len(wt.Data()) / k
	scale, shift := make([]float64, k), make([]float64, k)
	for c := range scale {
		scale[c] = 1
	}
	rest := params[1:]
	if op.Spec.Bias {
		for c, b := range rest[0].Data() {
			shift[c] = float64(b)
		}
		rest = rest[1:]
	}
	if op.BN {
		gamma, beta, mean, variance := rest[0].Data(), rest[1].Data(), rest[2].Data(), rest[3].Data()
		for c := range scale {
			s := float64(gamma[c]) / math.Sqrt(float64(variance[c])+float64(op.Eps))
			scale[c], shift[c] = s, (shift[c]-float64(mean[c]))*s+float64(beta[c])
		}
	}
	weight, bias := make([]float32, len(wt.Data())), make([]float32, k)
	for i, v := range wt.Data() {
		weight[i] = float32(float64(v) * scale[i/per])
	}
	for c := range bias {
		bias[c] = float32(shift[c])
	}
	name := strings.TrimSuffix(wt.Name, ".weight")
	dims := []int64{int64(shape[0]), int64(shape[1]), int64(shape[2]), int64(shape[3])}
	wName := g.initializer(onnx.FloatTensor(name+".weight", dims, weight))
	bName := g.initializer(onnx.FloatTensor(name+".bias", []int64{int64(k)}, bias))
	s := op.Spec
	p, st, d := int64(s.Pad), int64(s.Stride), int64(max(s.Dilation, 1))
	out := g.node("Conv", name, []string{ins[0], wName, bName},
		onnx.Ints("kernel_shape", int64(s.Kernel), int64(s.Kernel)), onnx.Ints("strides", st, st),
		onnx.Ints("pads", p, p, p, p), onnx.Ints("dilations", d, d), onnx.Int("group", 1))
	if op.Add {
		out = g.node("Add", l.Name, []string{out, ins[1]})
	}
	if op.ReLU {
		out = g.node("Relu", l.Name+".relu", []string{out})
	}
	return out, nil
}

// dynopool adds DynOPool's sampling op. Output cell i of an axis of n → n' takes bilinear
// queries at u = (i + ¼ or ¾)·n/n' − ½ (index space, clamped to [0, n−1]). A half-pixel Resize
// to 2n' puts its row k at (k + ½)·n/(2n') − ½, which for k = 2i and 2i+1 is exactly that pair,
// with the same clamp; a 2×2 max pool then takes the max of the four queries (an average pool
// their mean). So the two ops are DynOPool itself. Where 2n' = n on both axes the Resize is the
// identity and is left out; the pool never is (at alpha 1 the queries sit at i ± ¼, not on i).
// The centre query is the half-pixel Resize to n' itself.
func (g *graph) dynopool(name, x string, in []int, op dynopool.SampleOp) string {
	if op.Query == dynopool.Centre {
		if op.OH == in[2] && op.OW == in[3] {
			return x
		}
		return g.resize(name, x, in[1], op.OH, op.OW, false)
	}
	if 2*op.OH != in[2] || 2*op.OW != in[3] {
		x = g.resize(name+".resize", x, in[1], 2*op.OH, 2*op.OW, false)
	}
	pool := "MaxPool"
	if op.Query == dynopool.Mean {
		pool = "AveragePool"
	}
	return g.node(pool, name, []string{x}, onnx.Ints("kernel_shape", 2, 2), onnx.Ints("strides", 2, 2))
}

// dynopoolDescription says how a DynOPool model resizes, for the metadata.
func dynopoolDescription(m *hrnet.Model) string {
	read := map[dynopool.Query]string{dynopool.Max: "max of four queries", dynopool.Mean: "mean of four queries", dynopool.Centre: "bilinear"}
	if m.Down == hrnet.ResizeThenStride {
		return fmt.Sprintf(" (down: bilinear then stride-2 conv; up: %s)", read[m.Up])
	}
	return fmt.Sprintf(" (down: %s then conv; up: %s)", read[m.Query], read[m.Up])
}

// Version is segkit's version as the build records it (module version, and the commit when the
// build stamped one).
func Version() string {
	v := "(devel)"
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if info.Main.Version != "" {
		v = info.Main.Version
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev != "" {
		v += " " + rev + dirty
	}
	return v
}

// metadata is what a deployment needs besides the graph, as metadata_props (JSON values).
func metadata(m Model, opt Options, tr *nn.Trace, logits [2]int) ([]onnx.Property, error) {
	st, cfg := m.State, m.State.Config
	aug := cfg.TestAugment()
	palette := make([][3]uint8, len(st.Classes))
	for i := range palette {
		if i < len(st.Palette) {
			palette[i] = st.Palette[i]
		} else {
			r, g, b, _ := voc.Palette[i%len(voc.Palette)].RGBA()
			palette[i] = [3]uint8{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8)}
		}
	}
	hm := m.HRNet
	resize := string(hm.Resize)
	if hm.Resize == hrnet.DynOPool {
		resize += dynopoolDescription(hm)
	}
	var levels ordered // input to branch 3, in order
	for i, s := range hm.LevelSizes(m.Net.Params, opt.H, opt.W) {
		levels = append(levels, keyValue{hrnet.LevelNames[i], s})
	}
	var alphas ordered
	for _, p := range hm.Pools() {
		alphas = append(alphas, keyValue{p.Name + ".alpha", p.Alpha(m.Net.Params)})
	}
	output := fmt.Sprintf("%s, %d×%d (1/4 resolution)", opt.Output, logits[0], logits[1])
	if opt.Upsample {
		output = fmt.Sprintf("%s, %d×%d (the input size)", opt.Output, opt.H, opt.W)
	}
	values := []keyValue{
		{"classes", st.Classes},
		{"palette", palette},
		{"input", "RGB image, channels first, normalised: (pixel − mean) / std on 0–255 values"},
		{"mean", aug.Mean},
		{"std", aug.Std},
		{"input_size", [2]int{opt.H, opt.W}},
		{"output", output},
		{"model", "HRNetV2-" + hm.Name},
		{"resize", resize},
		{"align_corners", hm.AlignCorners},
		{"convention", conventionNote(cfg.Convention)},
		{"alphas", alphas},
		{"level_sizes", levels},
		{"config", cfg},
		{"segkit_version", Version()},
	}
	props := make([]onnx.Property, 0, len(values))
	for _, kv := range values {
		var s string
		if str, ok := kv.value.(string); ok {
			s = str
		} else {
			raw, err := json.Marshal(kv.value)
			if err != nil {
				return nil, fmt.Errorf("metadata %s: %w", kv.key, err)
			}
			s = string(raw)
		}
		props = append(props, onnx.Property{Key: kv.key, Value: s})
	}
	return props, nil
}

// ordered is a JSON object whose keys keep their order.
type ordered []keyValue

type keyValue struct {
	key   string
	value any
}

func (o ordered) MarshalJSON() ([]byte, error) {
	b := []byte("{")
	for i, kv := range o {
		k, err := json.Marshal(kv.key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(kv.value)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(append(append(b, k...), ':'), v...)
	}
	return append(b, '}'), nil
}

func conventionNote(c string) string {
	if c == "" {
		return "segkit"
	}
	return c
}

// docString says in a sentence what the graph takes and returns.
func docString(m Model, opt Options) string {
	return fmt.Sprintf("HRNetV2-%s (%s resizing), %d classes: input normalised RGB N×3×%d×%d, output %s. Exported by segkit.",
		m.HRNet.Name, m.HRNet.Resize, len(m.State.Classes), opt.H, opt.W, opt.Output)
}
