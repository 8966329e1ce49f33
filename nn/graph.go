package nn

import (
	"fmt"
	"runtime"
	"time"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Mode selects what a graph computes.
type Mode int

const (
	// Inference: batch norm uses running statistics; logits only.
	Inference Mode = iota
	// Training: batch statistics, loss = cross-entropy(logits resized to the labels) + extra
	// terms, and gradients for every trainable parameter.
	Training
)

func (m Mode) String() string { return [...]string{"inference", "training"}[m] }

// Graph is a model built for one input shape and mode, ready to run many times.
type Graph struct {
	Key       string
	Mode      Mode
	BuildTime time.Duration

	input    *G.Node
	labels   *G.Node
	logits   *G.Node
	ce, loss *G.Node
	params   []*Param // trainable parameters, parallel to grads
	grads    G.Nodes
	prog     *program
	shard    *graphShard // a rank's part of a data-parallel step (nil: the whole batch)
}

// imageLabels is the shape of labels for every pixel of inputs x.
func imageLabels(x tensor.Shape) tensor.Shape {
	if len(x) != 4 {
		return nil
	}
	return tensor.Shape{x[0], x[2], x[3]}
}

// build builds the graph; a training graph resizes the logits to the labels' N×H×W.
func build(model Model, params *Params, mode Mode, x, labels tensor.Shape, mem *arena, shard *Shard, perImage bool) (*Graph, error) {
	start := time.Now()
	if len(x) != 4 {
		return nil, fmt.Errorf("model input must be N×C×H×W, got shape %v", x)
	}
	if mode == Training && (len(labels) != 3 || labels[0] != x[0]) {
		return nil, fmt.Errorf("labels must be N×H×W with N = %d, got shape %v", x[0], labels)
	}
	gr := &Graph{Mode: mode}
	b, input, logits, _ := forward(model, params, mode, x, perImage)
	gr.input, gr.logits = input, logits
	outputs := G.Nodes{gr.logits}
	if mode == Training && b.err == nil {
		n, h, w := labels[0], labels[1], labels[2]
		gr.labels = G.NewTensor(b.g, tensor.Int32, 3, G.WithShape(n, h, w), G.WithName("labels"))
		up := b.Resize("upsample_logits", gr.logits, h, w)
		ce := crossEntropy{}
		if shard.active() {
			gr.shard = &graphShard{nterms: len(b.losses)}
			ce.shard = &gr.shard.ce
		}
		gr.ce = b.Apply("loss", ce, up, gr.labels)
		gr.loss = gr.ce
		for _, term := range b.losses {
			if gr.shard != nil { // the extra terms count once: on rank 0
				if shard.Comm.Rank() != 0 {
					continue
				}
				gr.shard.terms = append(gr.shard.terms, term)
			}
			if b.err == nil {
				var err error
				if gr.loss, err = G.Add(gr.loss, term); err != nil {
					b.Fail(fmt.Errorf("adding a loss term: %w", err))
				}
			}
		}
		var wrt G.Nodes
		for _, p := range b.order {
			if !p.Buffer {
				gr.params = append(gr.params, p)
				wrt = append(wrt, b.bound[p])
			}
		}
		if b.err == nil {
			var err error
			if gr.grads, err = G.Grad(gr.loss, wrt...); err != nil {
				b.Fail(fmt.Errorf("differentiating the loss: %w", err))
			}
		}
		outputs = append(G.Nodes{gr.logits, gr.ce, gr.loss}, gr.grads...)
	}
	if b.err != nil {
		return nil, b.err
	}
	var err error
	if gr.prog, err = compile(b.g, outputs, mem); err != nil {
		return nil, err
	}
	if gr.shard != nil {
		shard.attach(gr)
	}
	gr.BuildTime = time.Since(start)
	return gr, nil
}

// forward starts a graph for input shape x and adds the model to it; the error is also the
// builder's (build reports it after adding the training part).
func forward(model Model, params *Params, mode Mode, x tensor.Shape, perImage bool) (b *Builder, input, logits *G.Node, err error) {
	if len(x) != 4 {
		return nil, nil, nil, fmt.Errorf("model input must be N×C×H×W, got shape %v", x)
	}
	b = NewBuilder(params, mode == Training)
	b.perImage = perImage
	if a, ok := model.(CornerAligner); ok {
		b.alignCorners = a.AlignsCorners()
	}
	input = G.NewTensor(b.g, tensor.Float32, 4, G.WithShape(x...), G.WithName("input"))
	logits = model.Forward(b, input)
	if b.err == nil && logits == nil {
		b.Fail(fmt.Errorf("model returned no logits"))
	}
	return b, input, logits, b.err
}

// Program runs a gorgonia graph of our (or gorgonia's) ops with the engine's executor.
type Program struct{ p *program }

// Compile prepares g to compute outputs (and what they need), with memory of its own.
func Compile(g *G.ExprGraph, outputs ...*G.Node) (*Program, error) {
	p, err := compile(g, outputs, &arena{})
	return &Program{p}, err
}

// Run executes the graph once.
func (p *Program) Run() error { return p.p.run() }

// Value returns the latest value of output n.
func (p *Program) Value(n *G.Node) G.Value { return p.p.value(n) }

// Logits returns the logits of the latest run (valid until the next run).
func (gr *Graph) Logits() *tensor.Dense { return gr.prog.value(gr.logits).(*tensor.Dense) }

// ActivationBytes is the memory the graph's intermediate results take (in its arena).
func (gr *Graph) ActivationBytes() int { return 4 * gr.prog.need }

// PeakLiveBytes is the largest total size of results alive at one time: what any plan needs.
func (gr *Graph) PeakLiveBytes() int { return gr.prog.peak }

// Forward runs the graph on x (and on labels for a training graph).
func (gr *Graph) Forward(x, labels *tensor.Dense) error {
	if err := G.Let(gr.input, x); err != nil {
		return fmt.Errorf("input: %w", err)
	}
	if gr.Mode == Training {
		if labels == nil {
			return fmt.Errorf("a training graph needs labels")
		}
		if err := G.Let(gr.labels, labels); err != nil {
			return fmt.Errorf("labels: %w", err)
		}
	}
	return gr.prog.run()
}

// Losses of one training step.
type Losses struct {
	Total float32 // what was differentiated
	CE    float32 // the cross-entropy part
}

// Step runs forward and backward on a training graph and points every trained parameter's
// Grad at its gradient.
func (gr *Graph) Step(x, labels *tensor.Dense) (Losses, error) {
	if gr.Mode != Training {
		return Losses{}, fmt.Errorf("Step needs a training graph, this one is for %v", gr.Mode)
	}
	if err := gr.Forward(x, labels); err != nil {
		return Losses{}, err
	}
	for i, p := range gr.params {
		p.Grad = Floats(gr.prog.value(gr.grads[i]))
	}
	total, err := ScalarValue(gr.prog.value(gr.loss))
	if err != nil {
		return Losses{}, err
	}
	ce, err := ScalarValue(gr.prog.value(gr.ce))
	return Losses{Total: total, CE: ce}, err
}

// Net is a model with its parameters and a cache of graphs, one per input shape, mode and
// model key (GraphKeyer). The least recently used graph is dropped beyond Keep. The graphs share
// one memory arena: a result of one graph (logits, Param.Grad) is valid until any graph runs.
type Net struct {
	Model   Model
	Params  *Params
	Keep    int                                  // graphs kept; 0 means 2
	OnBuild func(key string, took time.Duration) // called after each (re)build, if set
	// Shard, with more than one rank, makes training steps one rank's part of a data-parallel
	// step (shard.go).
	Shard *Shard
	// PerImage makes a batch's inference give each image exactly the result it gets alone:
	// convolutions choose Winograd or the direct sum by one image's size, not the batch's
	// (segmentation.Predictor sets it; batched benchmarks leave it off).
	PerImage bool

	graphs []*Graph // most recently used first
	mem    arena    // shared by the graphs, which never run at the same time
}

// ActivationBytes is the memory of all graphs' intermediate results (shared between them).
func (n *Net) ActivationBytes() int { return 4 * len(n.mem.buf) }

// NewNet returns a net whose parameters are initialised from seed on first build.
func NewNet(model Model, seed uint64) *Net {
	return &Net{Model: model, Params: NewParams(seed)}
}

// Graph returns the cached graph for mode and input shape x (training: labels for every
// pixel), building it when needed.
func (n *Net) Graph(mode Mode, x tensor.Shape) (*Graph, error) {
	return n.graph(mode, x, imageLabels(x))
}

func (n *Net) graph(mode Mode, x, labels tensor.Shape) (*Graph, error) {
	key := fmt.Sprintf("%v %v", mode, x)
	if mode == Training {
		key += fmt.Sprintf(" labels %v", labels)
	}
	if k, ok := n.Model.(GraphKeyer); ok && len(x) == 4 {
		key += " " + k.GraphKey(n.Params, x[2], x[3])
	}
	if n.PerImage {
		key += " per-image"
	}
	if mode == Training && n.Shard.active() {
		key += " " + n.Shard.String()
	}
	for i, gr := range n.graphs {
		if gr.Key == key {
			copy(n.graphs[1:i+1], n.graphs[:i])
			n.graphs[0] = gr
			return gr, nil
		}
	}
	gr, err := build(n.Model, n.Params, mode, x, labels, &n.mem, n.Shard, n.PerImage)
	if err != nil {
		return nil, err
	}
	gr.Key = key
	keep := n.Keep
	if keep <= 0 {
		keep = 2
	}
	n.graphs = append([]*Graph{gr}, n.graphs...)
	if len(n.graphs) > keep {
		clear(n.graphs[keep:])
		n.graphs = n.graphs[:keep]
		runtime.GC() // gorgonia's graphs hold large buffers: return them before the next step
	}
	if n.OnBuild != nil {
		n.OnBuild(key, gr.BuildTime)
	}
	return gr, nil
}

// TrainStep runs forward and backward for one batch (Grad set on every trained parameter). The
// logits are resized to the labels' size for the loss.
func (n *Net) TrainStep(x, labels *tensor.Dense) (Losses, error) {
	gr, err := n.graph(Training, x.Shape(), labels.Shape())
	if err != nil {
		return Losses{}, err
	}
	if gr.shard != nil {
		return n.Shard.step(gr, n.Params, x, labels)
	}
	return gr.Step(x, labels)
}

// Predict returns the logits for x in inference mode (a fresh tensor).
func (n *Net) Predict(x *tensor.Dense) (*tensor.Dense, error) {
	gr, err := n.Graph(Inference, x.Shape())
	if err != nil {
		return nil, err
	}
	if err := gr.Forward(x, nil); err != nil {
		return nil, err
	}
	return gr.Logits().Clone().(*tensor.Dense), nil
}
