package sweep

import (
	"fmt"

	"github.com/segkit/segkit/dataset"
	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/segmentation/checkpoint"
)

// SizeProbe compares, for one DynOPool alpha component, the straight-through gradient that
// training follows with what one size step actually does to the loss.
type SizeProbe struct {
	Pool string `json:"pool"`
	Axis int    `json:"axis"` // 0: height, 1: width
	Size int    `json:"size"` // the output size the alpha gives now
	// ST is the mean straight-through dL/dalpha over the batches; FD is the loss difference
	// between the alphas that give Size+1 and Size−1, divided by their difference (0 where one
	// side is out of range).
	ST, FD float64
	// Loss at Size−1, Size and Size+1 (the cross-entropy, mean over the batches).
	Loss [3]float64
}

// ProbeSizes loads a checkpoint (as a DynOPool model of design like's resizing when like is
// not nil: a fixed model's weights at alpha 2, say) and, on batches training batches of its
// dataset (drawn with seed), compares each alpha's straight-through gradient of the
// cross-entropy with the loss change across one size step on each side. The batches run in
// training mode (batch statistics), as training sees them; the GMACs loss is left out.
func ProbeSizes(path string, like *segmentation.Config, batches int, seed uint64) ([]SizeProbe, error) {
	ck, err := checkpoint.LoadCheckpoint(path)
	if err != nil {
		return nil, err
	}
	c := ck.State.Config
	if like != nil {
		c.Resize, c.DynDown, c.DynQuery, c.DynUp = like.Resize, like.DynDown, like.DynQuery, like.DynUp
	}
	if c.Resize != "dynopool" {
		return nil, fmt.Errorf("%s is a %s model: probe it as a DynOPool one", path, c.Resize)
	}
	train, _, err := segmentation.OpenData(c)
	if err != nil {
		return nil, err
	}
	m, net, err := segmentation.NewModel(c, len(ck.State.Classes))
	if err != nil {
		return nil, err
	}
	for _, p := range net.Params.All() {
		v, ok := ck.Params[p.Name]
		switch {
		case ok && len(v) == len(p.Data()):
			copy(p.Data(), v)
		case !(like != nil && p.Group == "alpha"): // a fixed model's weights start at alpha 2
			return nil, fmt.Errorf("%s has no %s of the model's shape", path, p.Name)
		}
	}
	m.Budget.Lambda = 0
	loader := &dataset.Loader{Data: train, Aug: c.TrainAugment(), Batch: c.Batch, Seed: seed, Workers: max(c.Workers, 1)}
	stream := loader.Stream(0, 0)
	var xs []dataset.Batch
	for range batches {
		b, err := stream.Next()
		if err != nil {
			return nil, err
		}
		xs = append(xs, b)
	}
	// loss runs the batches, keeping the running statistics as they were; it returns the mean
	// cross-entropy and the mean alpha gradients.
	saved := map[string][]float32{}
	for _, p := range net.Params.All() {
		if p.Buffer {
			saved[p.Name] = append([]float32(nil), p.Data()...)
		}
	}
	loss := func() (float64, map[string][2]float64, error) {
		var l float64
		g := map[string][2]float64{}
		for _, b := range xs {
			ls, err := net.TrainStep(b.X, b.Labels)
			if err != nil {
				return 0, nil, err
			}
			l += float64(ls.CE) / float64(len(xs))
			for _, p := range m.Pools() {
				d, v := net.Params.Get(p.Name+".alpha").Grad, g[p.Name]
				v[0] += float64(d[0]) / float64(len(xs))
				v[1] += float64(d[1]) / float64(len(xs))
				g[p.Name] = v
			}
		}
		for name, v := range saved {
			copy(net.Params.Get(name).Data(), v)
		}
		return l, g, nil
	}
	base, st, err := loss()
	if err != nil {
		return nil, err
	}
	h, w := c.CropSize()
	in, out := m.PoolSizes(net.Params, h, w)
	var probes []SizeProbe
	for i, p := range m.Pools() {
		alpha := net.Params.Get(p.Name + ".alpha").Data()
		for ax := range 2 {
			n, o := in[i][ax], out[i][ax]
			pr := SizeProbe{Pool: p.Name, Axis: ax, Size: o, ST: st[p.Name][ax], Loss: [3]float64{0, base, 0}}
			was := alpha[ax]
			var at [2]float32
			for k, d := range []int{-1, 1} {
				if o+d < max(p.MinOut, 1) || (p.CapAtInput && o+d > n) {
					continue
				}
				at[k] = float32(n) / float32(o+d) // the alpha whose size is o+d
				alpha[ax] = at[k]
				if pr.Loss[2*k], _, err = loss(); err != nil {
					return nil, err
				}
			}
			alpha[ax] = was
			if at[0] != 0 && at[1] != 0 {
				pr.FD = (pr.Loss[2] - pr.Loss[0]) / float64(at[1]-at[0])
			}
			probes = append(probes, pr)
		}
	}
	return probes, nil
}
