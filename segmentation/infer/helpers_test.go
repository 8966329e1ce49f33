package infer_test

import (
	"testing"

	"github.com/segkit/segkit/segmentation"
)

// tinyConfig trains w18_small_v1 with DynOPool on 32×32 demo images: a second or so.
func tinyConfig(t *testing.T) segmentation.Config {
	c := segmentation.DemoConfig()
	c.Crop, c.Batch, c.Iters, c.DemoImages = 32, 2, 6, 20
	c.EvalEvery, c.CkptEvery, c.LogEvery, c.Warmup = 0, 0, 1, 2
	c.AlphaLR = 0.05 // let the sizes move: resuming must survive graph rebuilds
	c.Out, c.Name = t.TempDir(), "run"
	return c
}
