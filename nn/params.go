package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"gorgonia.org/tensor"
)

// Param is a named tensor of the model: a trainable weight or, with Buffer set, state such as
// batch-norm running statistics. It lives outside any graph, so graphs can be rebuilt freely.
type Param struct {
	Name   string
	Value  *tensor.Dense
	Group  string // optimizer parameter group ("" is the default group)
	Buffer bool   // not trained
	// Grad is dL/dValue from the latest backward pass: a view into the net's graph memory,
	// valid until a graph of the net runs again (so step the optimizer first).
	Grad []float32
	// Velocity is the SGD momentum buffer (nil until the first step).
	Velocity []float32
}

// Data returns the float32 values.
func (p *Param) Data() []float32 { return p.Value.Float32s() }

// Init fills a new parameter of the given shape.
type Init func(data []float32, shape []int, rng *rand.Rand)

// Constant fills with v.
func Constant(v float32) Init {
	return func(data []float32, _ []int, _ *rand.Rand) {
		for i := range data {
			data[i] = v
		}
	}
}

// Normal draws N(0, std²).
func Normal(std float64) Init {
	return func(data []float32, _ []int, rng *rand.Rand) {
		for i := range data {
			data[i] = float32(rng.NormFloat64() * std)
		}
	}
}

// KaimingNormal draws N(0, 2/fan_out), PyTorch's kaiming_normal_(mode='fan_out',
// nonlinearity='relu'), as mmsegmentation initialises HRNet's convolutions.
func KaimingNormal(data []float32, shape []int, rng *rand.Rand) {
	fanOut := shape[0]
	for _, d := range shape[2:] {
		fanOut *= d
	}
	std := math.Sqrt(2 / float64(fanOut))
	for i := range data {
		data[i] = float32(rng.NormFloat64() * std)
	}
}

// Params is the ordered set of a model's parameters and buffers.
type Params struct {
	list  []*Param
	index map[string]*Param
	rng   *rand.Rand
}

// NewParams returns an empty store whose initialisers draw from a generator seeded with seed.
func NewParams(seed uint64) *Params {
	return &Params{index: map[string]*Param{}, rng: rand.New(rand.NewPCG(seed, 0x5eed))}
}

// All returns the parameters in creation order.
func (ps *Params) All() []*Param { return ps.list }

// Get returns the named parameter or nil.
func (ps *Params) Get(name string) *Param { return ps.index[name] }

// Count returns the number of trainable scalars (buffers excluded).
func (ps *Params) Count() int {
	n := 0
	for _, p := range ps.list {
		if !p.Buffer {
			n += p.Value.Shape().TotalSize()
		}
	}
	return n
}

// ensure returns the named parameter, creating it with init on first use; a later use with
// another shape is an error (two layers sharing a name).
func (ps *Params) ensure(name string, shape []int, group string, buffer bool, init Init) (*Param, error) {
	if p, ok := ps.index[name]; ok {
		if !slices.Equal(p.Value.Shape(), shape) {
			return nil, fmt.Errorf("parameter %s has shape %v, now wanted as %v", name, p.Value.Shape(), tensor.Shape(shape))
		}
		return p, nil
	}
	for _, d := range shape {
		if d < 1 {
			return nil, fmt.Errorf("parameter %s: invalid shape %v", name, shape)
		}
	}
	v := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(shape...))
	init(v.Float32s(), shape, ps.rng)
	p := &Param{Name: name, Value: v, Group: group, Buffer: buffer}
	ps.list = append(ps.list, p)
	ps.index[name] = p
	return p, nil
}
