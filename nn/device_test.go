//go:build device

package nn

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/segkit/segkit/internal/device/sim"
)

// The device path on the simulated device (the CPU kernels behind the device interface) must
// give the CPU path's numbers bit for bit: every difference is a lowering, memory-plan or
// residency bug.
func TestSimDeviceStepEqualsCPU(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	x, labels := randTensor(rng, 1, 2, 3, 13, 10), randLabels(rng, 3, 2, 13, 10)
	cpu, dev := NewNet(tinyModel{classes: 3}, 7), NewNet(tinyModel{classes: 3}, 7)
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
	up := d.Stats.Uploaded
	if _, err := dev.DeviceStep(x, labels, opt); err != nil {
		t.Fatal(err)
	}
	// Resident: a step uploads the batch (and the few constants), not the parameters.
	if batch := int64(4 * (len(x.Float32s()) + 2*13*10)); d.Stats.Uploaded-up > batch+64 {
		t.Errorf("a resident step uploaded %d bytes, the batch is %d", d.Stats.Uploaded-up, batch)
	}
	if _, err := cpu.TrainStep(x, labels); err != nil {
		t.Fatal(err)
	}
	opt.Step(cpu.Params)
	if err := dev.SyncParams(); err != nil {
		t.Fatal(err)
	}
	for _, p := range cpu.Params.All() {
		q := dev.Params.Get(p.Name)
		if !slices.Equal(p.Data(), q.Data()) {
			t.Errorf("%s differs after 4 steps: %v vs %v", p.Name, q.Data()[:2], p.Data()[:2])
		}
		if !slices.Equal(p.Velocity, q.Velocity) {
			t.Errorf("%s: momentum differs", p.Name)
		}
	}
	if fb := dev.DeviceFallbacks(); len(fb) != 0 {
		t.Errorf("ops run on the host: %v", fb)
	}

	// The host-mode path (TrainStep, Predict on a device net) gives the CPU's gradients and logits.
	want, err := cpu.TrainStep(x, labels)
	if err != nil {
		t.Fatal(err)
	}
	got, err := dev.TrainStep(x, labels)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("TrainStep on the device: %+v, CPU %+v", got, want)
	}
	for _, p := range cpu.Params.All() {
		if q := dev.Params.Get(p.Name); !slices.Equal(p.Grad, q.Grad) || !slices.Equal(p.Data(), q.Data()) {
			t.Errorf("%s: gradient or value differs in host mode", p.Name)
		}
	}
	lc, err := cpu.Predict(x)
	if err != nil {
		t.Fatal(err)
	}
	ld, err := dev.Predict(x)
	if err != nil {
		t.Fatal(err)
	}
	// Inference fuses batch norm into the convolution's epilogue on the CPU only.
	if e := relErr(ld.Float32s(), lc.Float32s()); e > 1e-6 {
		t.Errorf("inference logits on the device: ‖Δ‖/‖ref‖ = %g", e)
	}
}

func TestSimDeviceRefusesBadLabels(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	net := NewNet(tinyModel{classes: 3}, 1)
	if err := net.UseDevice(sim.New()); err != nil {
		t.Fatal(err)
	}
	x, labels := randTensor(rng, 1, 2, 3, 8, 8), randLabels(rng, 3, 2, 8, 8)
	labels.Data().([]int32)[5] = 7
	_, err := net.DeviceStep(x, labels, &SGD{LR: 0.1})
	if err == nil || !strings.Contains(err.Error(), "outside [0, 3)") {
		t.Fatalf("a label of 7 with 3 classes gave %v", err)
	}
}

func relErr(got, want []float32) float64 {
	var d, r float64
	for i := range want {
		d += math.Pow(float64(got[i])-float64(want[i]), 2)
		r += math.Pow(float64(want[i]), 2)
	}
	return math.Sqrt(d / r)
}

var _ = tensor.Float32
