//go:build device

package nn

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/segkit/segkit/internal/device"
)

// DeviceKernel is a Kernel that also runs on a device (internal/device): the executor calls
// RunDevice instead of Run when the net runs on one. Kernels without it (and gorgonia's own
// ops, but for the tensor sums of gradient accumulation) run on the host, their inputs
// downloaded and their output uploaded: right, but a synchronisation each, so only tiny
// operations (DynOPool's sizes, the GMACs loss) should stay without.
type DeviceKernel interface {
	RunDevice(c *DeviceCall) error
}

// ErrHostOnly, returned by RunDevice before it queues anything, sends that call to the host
// path (a configuration the device lowering does not cover).
var ErrHostOnly = errors.New("nn: this op runs on the host")

// DeviceCall is one node's run on a device: where its inputs and output live, and their shapes.
type DeviceCall struct {
	Dev      device.Device
	Out      device.Ptr
	In       []device.Ptr
	OutShape tensor.Shape
	InShapes []tensor.Shape

	ds *devState
	dp *devProgram
}

// State returns device memory of the given size kept by the graph under key: what an op's
// forward leaves for its backward within a run (batch-norm statistics, DynOPool's winners).
// Keys are compared with ==; use a value of a type of your own.
func (c *DeviceCall) State(key any, bytes int) (device.Ptr, error) {
	if s, ok := c.dp.state[key]; ok && s.bytes >= bytes {
		return s.p, nil
	} else if ok {
		if err := c.Dev.Free(s.p); err != nil {
			return 0, err
		}
	}
	p, err := c.Dev.Alloc(bytes)
	if err != nil {
		return 0, err
	}
	c.dp.state[key] = devAlloc{p, bytes}
	return p, nil
}

// Floats downloads n float32 values (a synchronisation: for a few values only).
func (c *DeviceCall) Floats(p device.Ptr, n int) ([]float32, error) {
	f := make([]float32, n)
	return f, device.DownloadFloats(c.Dev, f, p)
}

// Param returns where the named parameter or buffer lives on the device.
func (c *DeviceCall) Param(name string) (device.Ptr, error) {
	p := c.ds.net.Params.Get(name)
	if p == nil {
		return 0, fmt.Errorf("no parameter %s", name)
	}
	return c.ds.param(p, false)
}

// After runs check when the graph's run has been queued (for checks that read the device,
// such as invalid labels, without waiting in the middle of the step).
func (c *DeviceCall) After(check func() error) { c.dp.after = append(c.dp.after, check) }

// devState is a net's device: one arena for the graphs' results (the plan's offsets, as on the
// CPU), each parameter's value and momentum, and per graph what lives outside the arena.
type devState struct {
	dev      device.Device
	net      *Net
	arena    device.Ptr
	arenaLen int // float32 values
	params   map[*Param]*devParam
	progs    map[*program]*devProgram
	// resident: the device's parameters, buffers and momentum are newer than the host's
	// (DeviceStep ran); SyncParams or a host-mode run brings them back.
	resident  bool
	fallbacks map[string]int // ops run on the host, by kind
	byValue   map[*tensor.Dense]*Param
	// hostRead: parameters that host-run ops read (DynOPool's alphas, which the graph key
	// reads too): DeviceStep brings them back after each update.
	hostRead map[*Param]bool
}

type devAlloc struct {
	p     device.Ptr
	bytes int
}

type devParam struct {
	val, vel device.Ptr
	n        int
	current  bool // the device value equals the host's
}

type devProgram struct {
	ptr   []device.Ptr
	own   map[int]devAlloc // values outside the arena: inputs, scalars, labels, constants
	state map[any]devAlloc
	host  map[int]G.Value // host copies: outputs, and the values of host-run ops
	after []func() error
}

// UseDevice runs the net's graphs on d from now on (nil: on the CPU again, after bringing the
// parameters back). The cached graphs are dropped: they are planned for one or the other.
func (n *Net) UseDevice(d device.Device) error {
	if ds := n.devState(); ds != nil {
		if err := n.SyncParams(); err != nil {
			return err
		}
		ds.release()
	}
	n.graphs = nil
	n.mem = arena{}
	if d != nil {
		n.mem.dev = &devState{dev: d, net: n, params: map[*Param]*devParam{}, progs: map[*program]*devProgram{},
			fallbacks: map[string]int{}, hostRead: map[*Param]bool{}}
	}
	return nil
}

// devState returns the net's device executor (nil: the net runs on the CPU).
func (n *Net) devState() *devState {
	ds, _ := n.mem.dev.(*devState)
	return ds
}

// Device returns the device the net runs on (nil: the CPU).
func (n *Net) Device() device.Device {
	if ds := n.devState(); ds != nil {
		return ds.dev
	}
	return nil
}

// DeviceFallbacks counts, by op kind, the calls the device path ran on the host.
func (n *Net) DeviceFallbacks() map[string]int {
	if ds := n.devState(); ds != nil {
		return ds.fallbacks
	}
	return nil
}

// SyncParams copies the parameters, buffers and SGD momentum that DeviceStep left on the device
// back to the host (for checkpoints, evaluation on the CPU, or reading them).
func (n *Net) SyncParams() error {
	ds := n.devState()
	if ds == nil || !ds.resident {
		return nil
	}
	for p, dp := range ds.params {
		if err := device.DownloadFloats(ds.dev, p.Data(), dp.val); err != nil {
			return err
		}
		if dp.vel != 0 {
			if p.Velocity == nil {
				p.Velocity = make([]float32, dp.n)
			}
			if err := device.DownloadFloats(ds.dev, p.Velocity, dp.vel); err != nil {
				return err
			}
		}
	}
	ds.resident = false
	return nil
}

// DeviceStep trains on one batch on the net's device: forward, backward and opt's update, with
// the parameters, momentum and batch-norm statistics staying on the device; only the batch goes
// up and the losses come down. It equals TrainStep followed by opt.Step(n.Params), except that
// Param.Grad is not set and the host's parameters are stale until SyncParams.
func (n *Net) DeviceStep(x, labels *tensor.Dense, opt *SGD) (Losses, error) {
	ds := n.devState()
	if ds == nil {
		return Losses{}, errors.New("DeviceStep: the net has no device (UseDevice)")
	}
	gr, err := n.graph(Training, x.Shape(), labels.Shape())
	if err != nil {
		return Losses{}, err
	}
	if err := G.Let(gr.input, x); err != nil {
		return Losses{}, fmt.Errorf("input: %w", err)
	}
	if err := G.Let(gr.labels, labels); err != nil {
		return Losses{}, fmt.Errorf("labels: %w", err)
	}
	if err := ds.run(gr.prog, true); err != nil {
		return Losses{}, err
	}
	dp := ds.progs[gr.prog]
	for i, p := range gr.params {
		lr, wd, mu := opt.rates(p)
		d := ds.params[p]
		if d.vel == 0 {
			if d.vel, err = ds.dev.Alloc(4 * d.n); err != nil {
				return Losses{}, err
			}
			if p.Velocity != nil { // resumed: the checkpoint's momentum
				if err := device.UploadFloats(ds.dev, d.vel, p.Velocity); err != nil {
					return Losses{}, err
				}
			}
		}
		if err := ds.dev.Momentum(d.n, d.val, dp.ptr[gr.prog.index[gr.grads[i]]], d.vel, lr, wd, mu); err != nil {
			return Losses{}, fmt.Errorf("SGD on %s: %w", p.Name, err)
		}
	}
	for p := range ds.hostRead {
		if err := device.DownloadFloats(ds.dev, p.Data(), ds.params[p].val); err != nil {
			return Losses{}, err
		}
	}
	var l [2]float32
	for k, node := range []*G.Node{gr.loss, gr.ce} {
		if err := device.DownloadFloats(ds.dev, l[k:k+1], dp.ptr[gr.prog.index[node]]); err != nil {
			return Losses{}, err
		}
	}
	return Losses{Total: l[0], CE: l[1]}, nil
}

// param returns the device copy of p, uploading it when the host's is newer (always, in a
// host-mode run: the host may have changed it, e.g. an SGD step on the CPU).
func (ds *devState) param(p *Param, upload bool) (device.Ptr, error) {
	d := ds.params[p]
	if d == nil {
		d = &devParam{n: len(p.Data())}
		var err error
		if d.val, err = ds.dev.Alloc(4 * d.n); err != nil {
			return 0, fmt.Errorf("parameter %s: %w", p.Name, err)
		}
		ds.params[p] = d
	}
	if upload || !d.current {
		if err := device.UploadFloats(ds.dev, d.val, p.Data()); err != nil {
			return 0, err
		}
		d.current = true
	}
	return d.val, nil
}

func (ds *devState) release() {
	for p := range ds.progs {
		ds.drop(p)
	}
	for _, d := range ds.params {
		ds.dev.Free(d.val)
		if d.vel != 0 {
			ds.dev.Free(d.vel)
		}
	}
	if ds.arena != 0 {
		ds.dev.Free(ds.arena)
	}
}

func (ds *devState) drop(p *program) {
	dp := ds.progs[p]
	for _, a := range dp.own {
		ds.dev.Free(a.p)
	}
	for _, a := range dp.state {
		ds.dev.Free(a.p)
	}
	delete(ds.progs, p)
}

// run executes p on the device. resident (DeviceStep): parameters stay on the device and
// nothing comes back; otherwise (Forward, Step, Predict) the host's parameters go up first and
// the outputs and the updated buffers come back, so callers see what the CPU path gives.
func (ds *devState) run(p *program, resident bool) error {
	if !resident && ds.resident {
		if err := ds.net.SyncParams(); err != nil {
			return err
		}
	}
	ds.resident = ds.resident || resident
	// Graphs the net dropped free their device memory.
	for q := range ds.progs {
		if !hasProgram(ds.net.graphs, q) {
			ds.drop(q)
		}
	}
	if p.need > ds.arenaLen {
		if ds.arena != 0 {
			if err := ds.dev.Free(ds.arena); err != nil {
				return err
			}
			ds.arena, ds.arenaLen = 0, 0
		}
		a, err := ds.dev.Alloc(4 * p.need)
		if err != nil {
			return fmt.Errorf("device arena of %d MiB: %w", 4*p.need>>20, err)
		}
		ds.arena, ds.arenaLen = a, p.need
	}
	dp := ds.progs[p]
	if dp == nil {
		dp = &devProgram{ptr: make([]device.Ptr, len(p.nodes)), own: map[int]devAlloc{}, state: map[any]devAlloc{}, host: map[int]G.Value{}}
		ds.progs[p] = dp
	}
	dp.after = dp.after[:0]
	byValue := map[*tensor.Dense]*Param{}
	for _, prm := range ds.net.Params.All() {
		byValue[prm.Value] = prm
	}
	ds.byValue = byValue
	for i, n := range p.nodes {
		if p.isVar[i] {
			v := n.Value()
			if v == nil {
				return fmt.Errorf("input %s has no value", n.Name())
			}
			if t, ok := v.(*tensor.Dense); ok && byValue[t] != nil {
				var err error
				if dp.ptr[i], err = ds.param(byValue[t], !resident); err != nil {
					return err
				}
				continue
			}
			if err := ds.uploadOwn(dp, i, v); err != nil {
				return fmt.Errorf("input %s: %w", n.Name(), err)
			}
			continue
		}
		if len(p.args[i]) == 0 && p.values[i] != nil { // a constant
			if err := ds.uploadOwn(dp, i, p.values[i]); err != nil {
				return err
			}
			continue
		}
		if off := p.offset[i]; off >= 0 {
			dp.ptr[i] = ds.arena.Floats(off)
		} else if err := ds.own(dp, i, valueBytes(n)); err != nil {
			return err
		}
		if err := ds.exec(p, dp, i); err != nil {
			return fmt.Errorf("%v: %w", n.Op(), err)
		}
	}
	for _, check := range dp.after {
		if err := check(); err != nil {
			return err
		}
	}
	if resident {
		return nil
	}
	for _, i := range p.outs {
		v, err := ds.download(p, dp, i)
		if err != nil {
			return err
		}
		p.values[i] = v
	}
	for prm, d := range ds.params { // running statistics were updated on the device
		if prm.Buffer {
			if err := device.DownloadFloats(ds.dev, prm.Data(), d.val); err != nil {
				return err
			}
		}
		d.current = false // the host may change any parameter before the next run
	}
	return nil
}

func hasProgram(graphs []*Graph, p *program) bool {
	for _, g := range graphs {
		if g.prog == p {
			return true
		}
	}
	return false
}

// exec queues node i: its device kernel, a gradient sum, or the host path.
func (ds *devState) exec(p *program, dp *devProgram, i int) error {
	n := p.nodes[i]
	in := make([]device.Ptr, len(p.args[i]))
	shapes := make([]tensor.Shape, len(p.args[i]))
	for k, a := range p.args[i] {
		in[k], shapes[k] = dp.ptr[a], p.nodes[a].Shape()
	}
	if o, ok := n.Op().(op); ok {
		if dk, ok := o.k.(DeviceKernel); ok {
			err := dk.RunDevice(&DeviceCall{Dev: ds.dev, Out: dp.ptr[i], In: in, OutShape: n.Shape(), InShapes: shapes, ds: ds, dp: dp})
			if !errors.Is(err, ErrHostOnly) {
				return err
			}
		}
	} else if isGorgoniaAdd(n.Op()) && len(in) == 2 && !n.IsScalar() && n.Dtype() == tensor.Float32 &&
		shapes[0].Eq(shapes[1]) && shapes[0].Eq(n.Shape()) {
		// gorgonia's sum of the gradients of a node read more than once
		return ds.dev.Sum(n.Shape().TotalSize(), in, dp.ptr[i], false)
	}
	kind, _, _ := strings.Cut(n.Op().String(), "(")
	ds.fallbacks[kind]++
	host := make([]G.Value, len(in))
	for k, a := range p.args[i] {
		switch {
		case p.isVar[a]:
			host[k] = p.nodes[a].Value()
			if t, ok := host[k].(*tensor.Dense); ok && ds.byValue[t] != nil {
				ds.hostRead[ds.byValue[t]] = true
			}
		case len(p.args[a]) == 0 && p.values[a] != nil:
			host[k] = p.values[a]
		default:
			var err error
			if host[k], err = ds.download(p, dp, a); err != nil {
				return err
			}
		}
	}
	v, err := n.Op().Do(host...)
	if err != nil {
		return err
	}
	b, err := hostBytes(v)
	if err != nil {
		return err
	}
	if len(b) != valueBytes(n) {
		return fmt.Errorf("host result of %d bytes for a %v %v node", len(b), n.Dtype(), n.Shape())
	}
	return ds.dev.Upload(dp.ptr[i], b)
}

// isGorgoniaAdd recognises gorgonia's elementwise addition ("+ false"; the flag only matters
// for comparisons).
func isGorgoniaAdd(o G.Op) bool {
	kind, _, _ := strings.Cut(o.String(), " ")
	return kind == "+"
}

// download copies node i's device value into its host copy.
func (ds *devState) download(p *program, dp *devProgram, i int) (G.Value, error) {
	v := dp.host[i]
	if v == nil {
		n := p.nodes[i]
		v = newValue(n.Type(), n.Shape())
		dp.host[i] = v
	}
	b, err := hostBytes(v)
	if err != nil {
		return nil, err
	}
	return v, ds.dev.Download(b, dp.ptr[i])
}

// own gives node i device memory of its own (outside the arena).
func (ds *devState) own(dp *devProgram, i, bytes int) error {
	if a, ok := dp.own[i]; ok && a.bytes == bytes {
		dp.ptr[i] = a.p
		return nil
	} else if ok {
		ds.dev.Free(a.p)
	}
	ptr, err := ds.dev.Alloc(max(bytes, 4))
	if err != nil {
		return err
	}
	dp.own[i], dp.ptr[i] = devAlloc{ptr, bytes}, ptr
	return nil
}

func (ds *devState) uploadOwn(dp *devProgram, i int, v G.Value) error {
	b, err := hostBytes(v)
	if err != nil {
		return err
	}
	if err := ds.own(dp, i, len(b)); err != nil {
		return err
	}
	return ds.dev.Upload(dp.ptr[i], b)
}

// valueBytes is the size of node n's value.
func valueBytes(n *G.Node) int {
	return max(n.Shape().TotalSize(), 1) * int(n.Dtype().Size())
}

// hostBytes views a host value's memory (float32 or int32 tensors, float32 scalars).
func hostBytes(v G.Value) ([]byte, error) {
	switch t := v.(type) {
	case *G.F32:
		return unsafe.Slice((*byte)(unsafe.Pointer(t)), 4), nil
	case *tensor.Dense:
		switch d := t.Data().(type) {
		case []float32:
			return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(d))), 4*len(d)), nil
		case []int32:
			return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(d))), 4*len(d)), nil
		case float32:
			return nil, errors.New("scalar tensor values are not supported on a device")
		}
	}
	return nil, fmt.Errorf("a %T value cannot go to a device", v)
}
