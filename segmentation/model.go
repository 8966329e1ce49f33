package segmentation

import (
	"fmt"

	"gorgonia.org/tensor"

	"github.com/segkit/segkit/dynopool"
	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/importer"
	"github.com/segkit/segkit/nn"
)

// NewModel builds the configured model for classes classes, with its parameters created (from
// the seed) by a first small graph.
func NewModel(c Config, classes int) (*hrnet.Model, *nn.Net, error) {
	m, err := hrnet.New(c.Model, classes, hrnet.Resize(c.Resize))
	if err != nil {
		return nil, nil, err
	}
	m.Budget = dynopool.Budget{Lambda: c.GMACsW, Hinge: c.GMACsB > 0, Limit: c.GMACsB}
	if err := c.ApplyDesign(m); err != nil {
		return nil, nil, err
	}
	m.AlignCorners, m.TwoStepFuse = c.AlignCorners, c.Convention == importer.ConventionMMSeg
	net := nn.NewNet(m, c.Seed)
	if _, err := net.Graph(nn.Inference, tensor.Shape{1, 3, c.Crop, c.Crop}); err != nil {
		return nil, nil, err
	}
	return m, net, nil
}

// ApplyDesign sets m's DynOPool design (Down, Query, Up) from --dynopool-down, --dynopool-query
// and --dynopool-up ("": pool, max, max); a bad name is an error naming its flag.
func (c Config) ApplyDesign(m *hrnet.Model) error {
	down, err := hrnet.ParseDown(c.DynDown)
	if err != nil {
		return fmt.Errorf("--dynopool-down: %w", err)
	}
	query, up := dynopool.Max, dynopool.Max
	if c.DynQuery != "" {
		if query, err = dynopool.ParseQuery(c.DynQuery); err != nil || query == dynopool.Centre {
			return fmt.Errorf("--dynopool-query %q: max or mean", c.DynQuery)
		}
	}
	if c.DynUp != "" {
		if up, err = dynopool.ParseQuery(c.DynUp); err != nil {
			return fmt.Errorf("--dynopool-up: %w", err)
		}
	}
	m.Down, m.Query, m.Up = down, query, up
	return nil
}

// Info describes a model at an input size.
type Info struct {
	Model       string   `json:"model"`
	Resize      string   `json:"resize"`
	Classes     int      `json:"classes"`
	Size        [2]int   `json:"size"`
	Params      int      `json:"params"`       // trainable values, alphas included
	GMACs       float64  `json:"gmacs"`        // conv multiply-accumulates per image, 1e9
	BranchSizes [][2]int `json:"branch_sizes"` // feature size of branches 0–3
}

// Describe builds the model's parameters (with a small graph) and reports its size, compute
// and feature sizes for an h×w input.
func Describe(m *hrnet.Model, h, w int) (Info, error) {
	if h < 1 || w < 1 {
		return Info{}, fmt.Errorf("input size %d×%d must be positive", h, w)
	}
	net := nn.NewNet(m, 0)
	if _, err := net.Graph(nn.Inference, tensor.Shape{1, 3, 64, 64}); err != nil {
		return Info{}, err
	}
	levels := m.LevelSizes(net.Params, h, w)
	info := Info{Model: m.Name, Resize: string(m.Resize), Classes: m.Classes, Size: [2]int{h, w},
		Params: net.Params.Count(), GMACs: float64(m.MACs(net.Params, h, w)) / 1e9}
	for _, s := range levels[len(levels)-4:] {
		info.BranchSizes = append(info.BranchSizes, s)
	}
	return info, nil
}
