package nn

import (
	"fmt"
	"slices"
	"strings"
	"time"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// program runs a gorgonia graph: the nodes the outputs need, in creation order (a node is
// always created after its inputs), each op writing into memory planned once at compile time.
// Float32 tensors share buffers when their lifetimes do not overlap; outputs keep their own.
type program struct {
	nodes  []*G.Node
	args   [][]int // indices (into nodes) of each node's inputs
	values []G.Value
	isVar  []bool
	index  map[*G.Node]int
	arena  *arena
	offset []int // where each node's result lives in the arena, -1 for none
	need   int   // values of arena this graph uses
	gen    int   // the arena generation the values were bound at
	peak   int   // bytes of results alive at the same time, at most (a lower bound on memory)
	outs   []int // the outputs' indices (a device run downloads them)
	// done, when set, is called after node i's value is computed (host runs only), with its
	// final value: an op writes only its own node's memory, and outputs keep theirs to the end.
	// A data-parallel step starts gradient sums there, while the backward pass goes on.
	done func(i int)
}

func compile(g *G.ExprGraph, outputs G.Nodes, mem *arena) (*program, error) {
	all := g.AllNodes()
	pos := make(map[int64]int, len(all))
	for i, n := range all {
		pos[n.ID()] = i
	}
	children := func(n *G.Node) []int {
		var idx []int
		it := g.From(n.ID())
		for it.Next() {
			idx = append(idx, pos[it.Node().ID()])
		}
		return idx
	}
	// Keep what the outputs and the stateful ops depend on (gorgonia also differentiates with
	// respect to data inputs, which nothing needs).
	need := make([]bool, len(all))
	var stack []int
	for _, o := range outputs {
		i, ok := pos[o.ID()]
		if !ok {
			return nil, fmt.Errorf("output %v is not in the graph", o)
		}
		stack = append(stack, i)
	}
	for i, n := range all {
		if o, ok := n.Op().(op); ok {
			if _, ok := o.k.(Stateful); ok {
				stack = append(stack, i)
			}
		}
	}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if need[i] {
			continue
		}
		need[i] = true
		stack = append(stack, children(all[i])...)
	}
	p := &program{index: map[*G.Node]int{}, arena: mem}
	remap := make([]int, len(all))
	for i, n := range all {
		if !need[i] {
			continue
		}
		remap[i] = len(p.nodes)
		p.index[n] = len(p.nodes)
		p.nodes = append(p.nodes, n)
	}
	p.args = make([][]int, len(p.nodes))
	p.values = make([]G.Value, len(p.nodes))
	p.isVar = make([]bool, len(p.nodes))
	for i, n := range p.nodes {
		p.isVar[i] = n.Op() == nil
		kids := children(n)
		if c, ok := n.Op().(interface{ Value() G.Value }); ok && len(kids) == 0 {
			p.values[i] = c.Value() // a constant
			p.isVar[i] = false
			continue
		}
		for _, c := range kids {
			p.args[i] = append(p.args[i], remap[c])
		}
	}
	p.plan(outputs)
	return p, nil
}

// arena is the memory of the graphs of one Net. They never run at the same time, so they all
// place their results in one buffer, grown to the largest need: memory is that of the largest
// graph, and a rebuild reuses it instead of allocating (and zeroing) gigabytes.
type arena struct {
	buf []float32
	gen int // bumped when the buffer is replaced, so graphs re-point their tensors
	// dev, when set, runs the graphs on a device (device.go, built with the tag device): the
	// plan's offsets then place results in one device arena, and buf stays empty.
	dev deviceRunner
}

// deviceRunner executes a program on a device. The default build has none: the GPU backend
// does not yet run end to end, so the engine carries only this seam.
type deviceRunner interface {
	run(p *program, resident bool) error
}

// fit grows the buffer to at least n values.
func (a *arena) fit(n int) {
	if len(a.buf) < n {
		a.buf = make([]float32, n)
		a.gen++
	}
}

// plan places each float32 tensor result in the arena so that results alive at the same time
// never overlap: greedy by size, largest first, each at the lowest offset free during its
// lifetime (from its op to its last reader; outputs live to the end). This packs close to the
// peak of live results.
func (p *program) plan(outputs G.Nodes) {
	last := make([]int, len(p.nodes))
	for i, args := range p.args {
		last[i] = i
		for _, a := range args {
			last[a] = max(last[a], i)
		}
	}
	for _, o := range outputs {
		last[p.index[o]] = len(p.nodes)
		p.outs = append(p.outs, p.index[o])
	}
	const align = 16 // floats: 64-byte cache lines
	var order []int
	p.offset = make([]int, len(p.nodes))
	sizes := make([]int, len(p.nodes))
	live := make([]int, len(p.nodes)+1) // values alive at each step, for the peak
	for i, n := range p.nodes {
		p.offset[i] = -1
		if p.isVar[i] || p.values[i] != nil || n.Dtype() != tensor.Float32 || n.IsScalar() {
			continue
		}
		order = append(order, i)
		n := n.Shape().TotalSize()
		sizes[i] = (n + align - 1) / align * align
		for t := i; t <= last[i]; t++ {
			live[t] += n
		}
	}
	p.peak = 4 * slices.Max(live)
	slices.SortStableFunc(order, func(a, b int) int { return sizes[b] - sizes[a] })
	type block struct{ lo, hi int }
	var placed []int
	var busy []block
	p.need = 0
	for _, i := range order {
		busy = busy[:0]
		for _, j := range placed {
			if j <= last[i] && i <= last[j] { // lifetimes overlap
				busy = append(busy, block{p.offset[j], p.offset[j] + sizes[j]})
			}
		}
		slices.SortFunc(busy, func(a, b block) int { return a.lo - b.lo })
		off := 0
		for _, b := range busy {
			if b.lo-off >= sizes[i] {
				break
			}
			off = max(off, b.hi)
		}
		p.offset[i] = off
		p.need = max(p.need, off+sizes[i])
		placed = append(placed, i)
	}
	if p.arena.dev != nil {
		return // the device arena is sized when the program runs
	}
	p.arena.fit(p.need)
	p.bind()
}

// bind points every planned result at its place in the arena.
func (p *program) bind() {
	for i, n := range p.nodes {
		if off := p.offset[i]; off >= 0 {
			shape := n.Shape()
			p.values[i] = tensor.New(tensor.WithShape(shape...), tensor.WithBacking(p.arena.buf[off:off+shape.TotalSize()]))
		}
	}
	p.gen = p.arena.gen
}

// run executes every op once. Inputs are read from the values bound to the variable nodes.
// OpTimes, when not nil, sums the wall time of the ops programs run, by kind (the op's name
// up to its parameters), for profiling; programs must then run one at a time.
var OpTimes map[string]time.Duration

func (p *program) run() error {
	if p.arena.dev != nil {
		return p.arena.dev.run(p, false)
	}
	p.arena.fit(p.need)
	if p.gen != p.arena.gen {
		p.bind() // another graph grew a buffer this one uses
	}
	in := make([]G.Value, 0, 8)
	for i, n := range p.nodes {
		if p.isVar[i] {
			v := n.Value()
			if v == nil {
				return fmt.Errorf("input %s has no value", n.Name())
			}
			p.values[i] = v
			p.notify(i)
			continue
		}
		if len(p.args[i]) == 0 && p.values[i] != nil {
			p.notify(i)
			continue // constant
		}
		in = in[:0]
		for _, a := range p.args[i] {
			in = append(in, p.values[a])
		}
		var err error
		var start time.Time
		if OpTimes != nil {
			start = time.Now()
		}
		if pre, ok := n.Op().(G.UsePreallocDoer); ok && p.values[i] != nil {
			_, err = pre.UsePreallocDo(p.values[i], in...)
		} else {
			p.values[i], err = n.Op().Do(in...)
		}
		if OpTimes != nil {
			kind, _, _ := strings.Cut(n.Op().String(), "(")
			OpTimes[kind] += time.Since(start)
		}
		if err != nil {
			return fmt.Errorf("%v: %w", n.Op(), err)
		}
		p.notify(i)
	}
	return nil
}

func (p *program) notify(i int) {
	if p.done != nil {
		p.done(i)
	}
}

// value returns the latest value of node n (which must be an output for it to stay valid).
func (p *program) value(n *G.Node) G.Value {
	if i, ok := p.index[n]; ok {
		return p.values[i]
	}
	return nil
}
