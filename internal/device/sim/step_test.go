//go:build device

package sim_test

import (
	"math/rand/v2"
	"slices"
	"testing"

	"gorgonia.org/tensor"

	"github.com/segkit/segkit/dynopool"
	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/internal/device/sim"
	"github.com/segkit/segkit/nn"
)

// HRNet's training step (fixed resizing, and DynOPool with its GMACs loss) through the device
// path on the simulated device equals the CPU step bit for bit: losses, then after SGD every
// parameter, buffer and momentum. Ops left on the host are only the tiny size ops.
func TestHRNetStepOnSimEqualsCPU(t *testing.T) {
	for _, resize := range []hrnet.Resize{hrnet.Fixed, hrnet.DynOPool} {
		t.Run(string(resize), func(t *testing.T) {
			m, err := hrnet.New("w18_small_v1", 5, resize)
			if err != nil {
				t.Fatal(err)
			}
			if resize == hrnet.DynOPool {
				m.Budget = dynopool.Budget{Lambda: 0.1, Scale: 1}
			}
			rng := rand.New(rand.NewPCG(1, 2))
			x := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(2, 3, 48, 40))
			for i := range x.Float32s() {
				x.Float32s()[i] = float32(rng.NormFloat64())
			}
			lab := make([]int32, 2*48*40)
			for i := range lab {
				lab[i] = int32(rng.IntN(5))
				if rng.IntN(8) == 0 {
					lab[i] = 255
				}
			}
			labels := tensor.New(tensor.WithShape(2, 48, 40), tensor.WithBacking(lab))
			opt := &nn.SGD{LR: 0.01, Momentum: 0.9, WeightDecay: 5e-4,
				Groups: map[string]nn.Group{dynopool.Group: {LRMult: 10, NoDecay: true}}}
			cpu, dev := nn.NewNet(m, 3), nn.NewNet(m, 3)
			d := sim.New()
			if err := dev.UseDevice(d); err != nil {
				t.Fatal(err)
			}
			for step := range 2 {
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
					t.Fatalf("step %d: device %+v, CPU %+v", step, got, want)
				}
			}
			if err := dev.SyncParams(); err != nil {
				t.Fatal(err)
			}
			for _, p := range cpu.Params.All() {
				q := dev.Params.Get(p.Name)
				if !slices.Equal(p.Data(), q.Data()) || !slices.Equal(p.Velocity, q.Velocity) {
					t.Errorf("%s differs after two steps", p.Name)
				}
			}
			for kind := range dev.DeviceFallbacks() {
				switch kind {
				case "GMACsLoss", "StraightThroughSize", "StraightThroughSizeGrad", "+ false": // the scalar loss sum
				default:
					if len(kind) < 5 || kind[:4] != "Grad" {
						t.Errorf("%s ran on the host", kind)
					}
				}
			}
			t.Logf("%s: device ops %d, host fallbacks %v, uploaded %d B, downloaded %d B", resize, d.Stats.Calls,
				dev.DeviceFallbacks(), d.Stats.Uploaded, d.Stats.Downloaded)
		})
	}
}
