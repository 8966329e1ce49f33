//go:build device

package dynopool

import (
	"fmt"

	"github.com/segkit/segkit/internal/device"
	"github.com/segkit/segkit/internal/kernels"
	"github.com/segkit/segkit/nn"
)

// The sampling op on a device (nn.DeviceKernel). The straight-through sizes are device values:
// they are read back (four floats, a synchronisation per DynOPool layer) to describe the
// kernel exactly as the CPU path does; the size ops and the GMACs loss stay on the host.

// winnersKey and sizeGradsKey key a sampling op's device state: the winning query of every
// cell (training, max mode) and the four size gradients.
type (
	winnersKey   struct{ st *sampleState }
	sizeGradsKey struct{ st *sampleState }
)

func (k sample) deviceKernel(c *nn.DeviceCall) (kernels.Resample, device.Ptr, error) {
	if k.query == Centre {
		return kernels.Resample{}, 0, fmt.Errorf("DynOPool's centre query has no device kernel yet: train this variant on the CPU")
	}
	sizes, err := c.Floats(c.In[1], 2)
	if err != nil {
		return kernels.Resample{}, 0, err
	}
	out, err := c.Floats(c.In[2], 2)
	if err != nil {
		return kernels.Resample{}, 0, err
	}
	x := c.InShapes[0]
	r := kernels.Resample{Planes: x[0] * x[1], H: x[2], W: x[3], OH: k.oh, OW: k.ow,
		SizeIn: [2]float64{float64(sizes[0]), float64(sizes[1])}, SizeOut: [2]float64{float64(out[0]), float64(out[1])}, Mean: k.query == Mean}
	var won device.Ptr
	if k.st.train && k.query == Max {
		won, err = c.State(winnersKey{k.st}, r.Planes*r.OH*r.OW)
	}
	return r, won, err
}

func (k sample) RunDevice(c *nn.DeviceCall) error {
	r, won, err := k.deviceKernel(c)
	if err != nil {
		return err
	}
	return c.Dev.Resample(r, c.In[0], c.Out, won)
}

func (k sampleGrad) RunDevice(c *nn.DeviceCall) error {
	r, won, err := k.deviceKernel(c)
	if err != nil {
		return err
	}
	g, err := c.State(sizeGradsKey{k.st}, 16)
	if err != nil {
		return err
	}
	return c.Dev.ResampleBackward(r, c.In[0], c.In[3], c.Out, won, g)
}

func (k sizeGrad) RunDevice(c *nn.DeviceCall) error {
	g, err := c.State(sizeGradsKey{k.st}, 16)
	if err != nil {
		return err
	}
	if k.out {
		g = g.Floats(2)
	}
	return c.Dev.Copy(c.Out, g, 8)
}
