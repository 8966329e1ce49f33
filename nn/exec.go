package nn

import (
	"fmt"
	"slices"

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
	slots  [][]float32
	index  map[*G.Node]int
}

func compile(g *G.ExprGraph, outputs G.Nodes) (*program, error) {
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
	// Keep what the outputs depend on (gorgonia also differentiates w.r.t. data inputs).
	need := make([]bool, len(all))
	var stack []int
	for _, o := range outputs {
		i, ok := pos[o.ID()]
		if !ok {
			return nil, fmt.Errorf("output %v is not in the graph", o)
		}
		stack = append(stack, i)
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
	p := &program{index: map[*G.Node]int{}}
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
		if c, ok := n.Op().(interface{ Value() G.Value }); ok && len(children(n)) == 0 {
			p.values[i] = c.Value() // a constant
			p.isVar[i] = false
			continue
		}
		for _, c := range children(n) {
			p.args[i] = append(p.args[i], remap[c])
		}
	}
	p.plan(outputs, remap, pos)
	return p, nil
}

// plan assigns each float32 tensor result a slot: greedy reuse of a free slot, best fit first.
func (p *program) plan(outputs G.Nodes, remap []int, pos map[int64]int) {
	last := make([]int, len(p.nodes))
	for i, args := range p.args {
		last[i] = i
		for _, a := range args {
			last[a] = max(last[a], i)
		}
	}
	for _, o := range outputs {
		last[remap[pos[o.ID()]]] = len(p.nodes)
	}
	slotOf := make([]int, len(p.nodes))
	var sizes []int
	var free []int
	release := make([][]int, len(p.nodes)+1)
	for i, n := range p.nodes {
		slotOf[i] = -1
		if p.isVar[i] || p.values[i] != nil || n.Dtype() != tensor.Float32 || n.IsScalar() {
			continue
		}
		size := n.Shape().TotalSize()
		best := pick(free, sizes, size)
		if best >= 0 {
			slotOf[i] = free[best]
			free = slices.Delete(free, best, best+1)
			sizes[slotOf[i]] = max(sizes[slotOf[i]], size)
		} else {
			slotOf[i] = len(sizes)
			sizes = append(sizes, size)
		}
		release[last[i]] = append(release[last[i]], slotOf[i])
		free = append(free, release[i]...)
	}
	p.slots = make([][]float32, len(sizes))
	for s, size := range sizes {
		p.slots[s] = make([]float32, size)
	}
	for i, n := range p.nodes {
		if s := slotOf[i]; s >= 0 {
			shape := n.Shape()
			p.values[i] = tensor.New(tensor.WithShape(shape...), tensor.WithBacking(p.slots[s][:shape.TotalSize()]))
		}
	}
}

// pick returns the index in free of the slot that fits size most tightly or, when none fits,
// of the largest (which then grows); -1 when free is empty.
func pick(free, sizes []int, size int) int {
	best := -1
	for j, s := range free {
		if best < 0 {
			best = j
			continue
		}
		have, b := sizes[s], sizes[free[best]]
		if (have >= size && (b < size || have < b)) || (have < size && b < size && have > b) {
			best = j
		}
	}
	return best
}

// run executes every op once. Inputs are read from the values bound to the variable nodes.
func (p *program) run() error {
	in := make([]G.Value, 0, 8)
	for i, n := range p.nodes {
		if p.isVar[i] {
			v := n.Value()
			if v == nil {
				return fmt.Errorf("input %s has no value", n.Name())
			}
			p.values[i] = v
			continue
		}
		if len(p.args[i]) == 0 && p.values[i] != nil {
			continue // constant
		}
		in = in[:0]
		for _, a := range p.args[i] {
			in = append(in, p.values[a])
		}
		var err error
		if pre, ok := n.Op().(G.UsePreallocDoer); ok && p.values[i] != nil {
			_, err = pre.UsePreallocDo(p.values[i], in...)
		} else {
			p.values[i], err = n.Op().Do(in...)
		}
		if err != nil {
			return fmt.Errorf("%v: %w", n.Op(), err)
		}
	}
	return nil
}

// value returns the latest value of node n (which must be an output for it to stay valid).
func (p *program) value(n *G.Node) G.Value {
	if i, ok := p.index[n]; ok {
		return p.values[i]
	}
	return nil
}

// bytes is the planned activation memory.
func (p *program) bytes() int {
	t := 0
	for _, s := range p.slots {
		t += 4 * len(s)
	}
	return t
}
