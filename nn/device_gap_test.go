//go:build device

package nn

import (
	"math/rand/v2"
	"slices"
	"testing"

	G "gorgonia.org/gorgonia"

	"github.com/segkit/segkit/internal/device/sim"
)

// gapModel adds to a stem a global-context branch (global average pooling, a 1×1 conv, spread
// back over the image), as squeeze-and-excitation and classification heads do.
type gapModel struct{ classes int }

func (m gapModel) Forward(b *Builder, x *G.Node) *G.Node {
	s := b.BatchNorm("stem.bn", b.Conv("stem.conv", x, 4, ConvSpec{Kernel: 3, Stride: 2, Pad: 1}), true)
	g := b.Conv("ctx.conv", b.GlobalAvgPool("gap", s), 4, ConvSpec{Kernel: 1, Bias: true})
	h, w := b.HW(s)
	return b.Conv("cls", b.Concat("cat", s, b.Resize("ctx.up", g, h, w)), m.classes, ConvSpec{Kernel: 1, Bias: true})
}

// Global average pooling and its gradient on the simulated device: three training steps equal
// the CPU's bit for bit (losses, weights, momentum), every op on the device. The planes are
// 7×5 (odd, not square), the batch 2.
func TestSimDeviceGlobalAvgPool(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	x, labels := randTensor(rng, 1, 2, 3, 13, 10), randLabels(rng, 3, 2, 7, 5)
	cpu, dev := NewNet(gapModel{classes: 3}, 5), NewNet(gapModel{classes: 3}, 5)
	d := sim.New()
	if err := dev.UseDevice(d); err != nil {
		t.Fatal(err)
	}
	opt := &SGD{LR: 0.05, Momentum: 0.9, WeightDecay: 5e-4}
	for step := range 3 {
		want, err := cpu.TrainStep(x, labels)
		if err != nil {
			t.Fatal(err)
		}
		opt.Step(cpu.Params)
		got, err := dev.DeviceStep(x, labels, opt)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("step %d: device losses %+v, CPU %+v", step, got, want)
		}
	}
	if err := dev.SyncParams(); err != nil {
		t.Fatal(err)
	}
	for _, p := range cpu.Params.All() {
		q := dev.Params.Get(p.Name)
		if !slices.Equal(p.Data(), q.Data()) || !slices.Equal(p.Velocity, q.Velocity) {
			t.Errorf("%s differs after 3 steps", p.Name)
		}
	}
	if fb := dev.DeviceFallbacks(); len(fb) != 0 {
		t.Errorf("ops run on the host: %v", fb)
	}
}
