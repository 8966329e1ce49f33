//go:build device

package nn

import (
	"fmt"

	"github.com/segkit/segkit/internal/device"
	"github.com/segkit/segkit/internal/kernels"
)

// The device lowering of the engine's kernels: the same kernel descriptions as Run, on device
// memory. Each checks shapes as Run does.

func (k conv2d) RunDevice(c *DeviceCall) error {
	g, err := k.geometry(c.InShapes[0], c.InShapes[1])
	if err != nil {
		return err
	}
	g.Winograd, g.PerImage = k.winograd, k.perImage // a device may use Winograd where the CPU does (inference)
	var bias device.Ptr
	if k.Bias {
		bias = c.In[2]
	}
	return c.Dev.ConvForward(g, c.In[0], c.In[1], bias, c.Out)
}

// convBN on a device: the convolution, then batch norm with the running statistics, then the
// residual sum and ReLU, as three calls (the CPU fuses them into the convolution's epilogue, so
// the rounding differs slightly).
func (k convBN) RunDevice(c *DeviceCall) error {
	g, err := k.geometry(c.InShapes[0], c.InShapes[1])
	if err != nil {
		return err
	}
	g.Winograd, g.PerImage = true, k.perImage
	rest := c.In[2:]
	var bias device.Ptr
	if k.Bias {
		bias, rest = rest[0], rest[1:]
	}
	if err := c.Dev.ConvForward(g, c.In[0], c.In[1], bias, c.Out); err != nil {
		return err
	}
	oh, ow := g.OutSize()
	bn := kernels.BatchNorm{N: g.N, C: g.K, HW: oh * ow, Eps: k.eps, ReLU: k.relu && !k.add}
	if err := c.Dev.BNForwardEval(bn, c.Out, rest[0], rest[1], c.Out, rest[2], rest[3]); err != nil {
		return err
	}
	if !k.add {
		return nil
	}
	return c.Dev.Sum(g.N*g.K*oh*ow, []device.Ptr{c.Out, rest[4]}, c.Out, k.relu)
}

func (k convData) RunDevice(c *DeviceCall) error {
	g, err := k.geometry(k.x, c.InShapes[0])
	if err != nil {
		return err
	}
	return c.Dev.ConvBackwardData(g, c.In[0], c.In[1], c.Out)
}

func (k convFilter) RunDevice(c *DeviceCall) error {
	g, err := k.geometry(c.InShapes[0], k.w)
	if err != nil {
		return err
	}
	return c.Dev.ConvBackwardFilter(g, c.In[0], c.In[1], c.Out)
}

func (planeSum) RunDevice(c *DeviceCall) error {
	n, ch, h, w := nchw(c.InShapes[0])
	return c.Dev.SumPlanes(n, ch, h*w, c.In[0], c.Out)
}

// bnStats and bnGrads key a batch norm's device state: the saved mean and 1/std, and dγ, dβ.
type (
	bnStats struct{ st *bnState }
	bnGrads struct{ st *bnState }
)

func (k batchNorm) RunDevice(c *DeviceCall) error {
	st := k.st
	if err := st.check(c.InShapes[0], c.InShapes[1], c.InShapes[2]); err != nil {
		return err
	}
	bn := st.kernel(c.InShapes[0])
	runMean, err := c.Param(st.layer + ".running_mean")
	if err != nil {
		return err
	}
	runVar, err := c.Param(st.layer + ".running_var")
	if err != nil {
		return err
	}
	if !st.train {
		return c.Dev.BNForwardEval(bn, c.In[0], c.In[1], c.In[2], c.Out, runMean, runVar)
	}
	stats, err := c.State(bnStats{st}, 8*bn.C)
	if err != nil {
		return err
	}
	return c.Dev.BNForwardTrain(bn, c.In[0], c.In[1], c.In[2], c.Out, stats, stats.Floats(bn.C), runMean, runVar, st.momentum)
}

func (k bnBackward) RunDevice(c *DeviceCall) error {
	st := k.st
	if !st.train {
		return fmt.Errorf("batch norm %s: the gradient of an inference-mode batch norm is not lowered to devices", st.layer)
	}
	bn := st.kernel(c.InShapes[0])
	stats, err := c.State(bnStats{st}, 8*bn.C)
	if err != nil {
		return err
	}
	grads, err := c.State(bnGrads{st}, 8*bn.C)
	if err != nil {
		return err
	}
	var y device.Ptr
	if st.relu {
		y = c.In[3]
	}
	return c.Dev.BNBackward(bn, c.In[0], y, c.In[1], c.In[2], stats, stats.Floats(bn.C), c.Out, grads, grads.Floats(bn.C))
}

func (k bnParamGrad) RunDevice(c *DeviceCall) error {
	C := len(k.st.runMean)
	grads, err := c.State(bnGrads{k.st}, 8*C)
	if err != nil {
		return err
	}
	if k.beta {
		grads = grads.Floats(C)
	}
	return c.Dev.Copy(c.Out, grads, 4*C)
}

func (k sum) RunDevice(c *DeviceCall) error {
	return c.Dev.Sum(c.OutShape.TotalSize(), c.In, c.Out, k.relu)
}

func (reluGrad) RunDevice(c *DeviceCall) error {
	return c.Dev.ReLUBackward(c.OutShape.TotalSize(), c.In[0], c.In[1], c.Out)
}

func (k concat) RunDevice(c *DeviceCall) error {
	n, ch, h, w := nchw(c.OutShape)
	to := 0
	for i, s := range c.InShapes {
		if err := c.Dev.CopyChannels(c.In[i], s[1], 0, c.Out, ch, to, s[1], n, h*w); err != nil {
			return err
		}
		to += s[1]
	}
	return nil
}

func (k channelSlice) RunDevice(c *DeviceCall) error {
	n, ch, h, w := nchw(c.InShapes[0])
	return c.Dev.CopyChannels(c.In[0], ch, k.from, c.Out, k.count, 0, k.count, n, h*w)
}

func (globalAvgPool) RunDevice(c *DeviceCall) error {
	n, ch, h, w := nchw(c.InShapes[0])
	return c.Dev.PlaneMeans(n*ch, h*w, c.In[0], c.Out)
}

func (k spreadPlanes) RunDevice(c *DeviceCall) error {
	return c.Dev.SpreadPlanes(k.x[0]*k.x[1], k.x[2]*k.x[3], c.In[0], c.Out)
}

func (k resize) RunDevice(c *DeviceCall) error {
	n, ch, h, w := nchw(c.InShapes[0])
	return c.Dev.Bilinear(kernels.Bilinear{Planes: n * ch, H: h, W: w, OH: k.h, OW: k.w, AlignCorners: k.align}, c.In[0], c.Out)
}

func (k resizeGrad) RunDevice(c *DeviceCall) error {
	n, ch, oh, ow := nchw(c.InShapes[0])
	return c.Dev.BilinearBackward(kernels.Bilinear{Planes: n * ch, H: k.h, W: k.w, OH: oh, OW: ow, AlignCorners: k.align}, c.In[0], c.Out)
}

// badLabels keys the count of invalid labels a cross-entropy node found.
type badLabels struct{ out device.Ptr }

// crossEntropy's forward and gradient; invalid labels are reported after the run, as the CPU
// kernel refuses them.
func crossEntropyDevice(c *DeviceCall, scale, loss, dlogits device.Ptr) error {
	ce, err := ceKernel(c.InShapes[0], c.InShapes[1])
	if err != nil {
		return err
	}
	bad, err := c.State(badLabels{c.Out}, 4)
	if err != nil {
		return err
	}
	c.After(func() error {
		var n [1]int32
		if err := device.DownloadInts(c.Dev, n[:], bad); err != nil {
			return err
		}
		if n[0] > 0 {
			return fmt.Errorf("cross-entropy: %d labels are outside [0, %d) and are not the ignore index %d", n[0], ce.C, ce.Ignore)
		}
		return nil
	})
	return c.Dev.CrossEntropy(ce, c.In[0], c.In[1], scale, loss, dlogits, bad)
}

func (k crossEntropy) RunDevice(c *DeviceCall) error {
	if k != (crossEntropy{}) {
		return ErrHostOnly // a configured loss (a data-parallel shard) keeps its host path
	}
	return crossEntropyDevice(c, 0, c.Out, 0)
}

func (k crossEntropyGrad) RunDevice(c *DeviceCall) error {
	if k != (crossEntropyGrad{}) {
		return ErrHostOnly
	}
	return crossEntropyDevice(c, c.In[2], 0, c.Out)
}
