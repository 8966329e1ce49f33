package hrnet

import (
	"slices"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/segkit/segkit/dynopool"
	"github.com/segkit/segkit/internal/numcheck"
	"github.com/segkit/segkit/nn"
)

// Parameter counts and conv MACs at 512×512 of the official models (19 classes, from the
// reference's research count, matching the HRNet-Semantic-Segmentation README); DynOPool mode
// adds only the 4 alphas and, at the initial alphas, has the same sizes and MACs; 1/4-resolution
// logits.
func TestParamsMACsAndOutputShape(t *testing.T) {
	want := map[string][2]int64{ // params, conv MACs per image at 512×512
		"w18_small_v1": {1540819, 4173856768}, "w18_small_v2": {3939579, 9607110656},
		"w18": {9641119, 18425131008}, "w32": {29546515, 45153255424}, "w48": {65859379, 93439131648},
	}
	for _, c := range Configs {
		m, err := New(c.Name, 19, Fixed)
		if err != nil {
			t.Fatal(err)
		}
		net := nn.NewNet(m, 0)
		gr, err := net.Graph(nn.Inference, tensor.Shape{1, 3, 64, 96})
		if err != nil {
			t.Fatal(err)
		}
		if got := net.Params.Count(); int64(got) != want[c.Name][0] {
			t.Errorf("%s: %d parameters, want %d", c.Name, got, want[c.Name][0])
		}
		if got := m.MACs(net.Params, 512, 512); got != want[c.Name][1] {
			t.Errorf("%s: %d conv MACs at 512×512, want %d", c.Name, got, want[c.Name][1])
		}
		dm, _ := New(c.Name, 19, DynOPool)
		dnet := nn.NewNet(dm, 0)
		if _, err := dnet.Graph(nn.Inference, tensor.Shape{1, 3, 64, 96}); err != nil {
			t.Fatal(err)
		}
		if got := dnet.Params.Count(); int64(got) != want[c.Name][0]+8 {
			t.Errorf("%s DynOPool: %d parameters, want %d + 8 alphas", c.Name, got, want[c.Name][0])
		}
		if dm.LevelSizes(dnet.Params, 512, 512) != m.LevelSizes(net.Params, 512, 512) || dm.MACs(dnet.Params, 512, 512) != want[c.Name][1] {
			t.Errorf("%s DynOPool at initial alphas: sizes %v, MACs %d differ from the fixed model's",
				c.Name, dm.LevelSizes(dnet.Params, 512, 512), dm.MACs(dnet.Params, 512, 512))
		}
		x := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(1, 3, 64, 96))
		if err := gr.Forward(x, nil); err != nil {
			t.Fatal(err)
		}
		if s := gr.Logits().Shape(); !s.Eq(tensor.Shape{1, 19, 16, 24}) {
			t.Errorf("%s: logits %v, want (1, 19, 16, 24)", c.Name, s)
		}
	}
}

func TestUnknownConfig(t *testing.T) {
	if _, err := New("w64", 21, Fixed); err == nil || !strings.Contains(err.Error(), "w18_small_v1") {
		t.Errorf("unknown config: %v", err)
	}
	if _, err := New("w18", 0, Fixed); err == nil {
		t.Error("zero classes accepted")
	}
}

// Sizes of odd inputs: the fixed model rounds up (stride-2 convolutions), DynOPool rounds half to
// even; the reference prints these for 100×75.
func TestLevelSizesOfOddInputs(t *testing.T) {
	fixed, _ := New("w18_small_v1", 8, Fixed)
	dyno, _ := New("w18_small_v1", 8, DynOPool)
	params := nn.NewParams(0)
	if got, want := fixed.LevelSizes(params, 100, 75), [numLevels][2]int{{100, 75}, {50, 38}, {25, 19}, {13, 10}, {7, 5}, {4, 3}}; got != want {
		t.Errorf("fixed: %v, want %v", got, want)
	}
	if got, want := dyno.LevelSizes(params, 100, 75), [numLevels][2]int{{100, 75}, {50, 38}, {25, 19}, {12, 10}, {6, 5}, {3, 2}}; got != want {
		t.Errorf("DynOPool: %v, want %v", got, want)
	}
}

// The GMACs loss reaches the training loss and the alphas: at the initial alphas, the plain
// form adds lambda × the fixed model's GMACs at the crop.
func TestGMACsLossIsWired(t *testing.T) {
	m, _ := New("w18_small_v1", 4, DynOPool)
	m.Budget = dynopool.Budget{Lambda: 0.5, Scale: 1}
	net := nn.NewNet(m, 0)
	x := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(2, 3, 64, 64))
	for i := range x.Float32s() {
		x.Float32s()[i] = float32(i%7) - 3
	}
	labels := tensor.New(tensor.WithShape(2, 64, 64), tensor.WithBacking(make([]int32, 2*64*64)))
	l, err := net.TrainStep(x, labels)
	if err != nil {
		t.Fatal(err)
	}
	gmacs := float64(m.MACs(net.Params, 64, 64)) / 1e9
	if got := float64(l.Total - l.CE); !numcheck.Close(got, 0.5*gmacs, 1e-6) {
		t.Errorf("loss − cross-entropy = %v, want 0.5 × %v GMACs", got, gmacs)
	}
	// Without the task loss's part, every alpha's gradient from the GMACs term alone is negative
	// (larger alphas, fewer MACs): compare with λ = 0.
	withLoss := map[string][]float32{}
	for _, p := range m.Pools() {
		withLoss[p.Name] = append([]float32(nil), net.Params.Get(p.Name+".alpha").Grad...)
	}
	m.Budget.Lambda = 0
	net2 := nn.NewNet(m, 0)
	if _, err := net2.TrainStep(x, labels); err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Pools() {
		g0, g1 := net2.Params.Get(p.Name+".alpha").Grad, withLoss[p.Name]
		for i := range g0 {
			if !(g1[i] < g0[i]) {
				t.Errorf("%s: the GMACs loss does not lower the alpha gradient (%v with, %v without)", p.Name, g1, g0)
			}
		}
	}
}

// ResizeThenStride with bilinear up-sampling is the fixed model at the initial alphas (sizes that
// halve exactly): the same parameters, and logits within float32 rounding of the fixed model's
// (its resizes are identities there; only the up-sampling rounds differently), training and
// inference.
func TestStridedIsFixedAtInitialAlphas(t *testing.T) {
	fixed, _ := New("w18_small_v1", 5, Fixed)
	strided, _ := New("w18_small_v1", 5, DynOPool)
	strided.Down, strided.Up = ResizeThenStride, dynopool.Centre
	x := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(2, 3, 64, 96))
	for i := range x.Float32s() {
		x.Float32s()[i] = float32(i%11)*0.3 - 1.5
	}
	labels := tensor.New(tensor.WithShape(2, 64, 96), tensor.WithBacking(make([]int32, 2*64*96)))
	logits := map[nn.Mode][2][]float32{}
	nets := [2]*nn.Net{nn.NewNet(fixed, 7), nn.NewNet(strided, 7)}
	for _, mode := range []nn.Mode{nn.Inference, nn.Training} {
		var out [2][]float32
		for i, net := range nets {
			gr, err := net.Graph(mode, x.Shape())
			if err != nil {
				t.Fatal(err)
			}
			if i == 1 && mode == nn.Inference {
				for _, p := range nets[0].Params.All() {
					if q := net.Params.Get(p.Name); q == nil || !slices.Equal(q.Data(), p.Data()) {
						t.Fatalf("%s is not initialised alike in both models", p.Name)
					}
				}
			}
			var lab *tensor.Dense
			if mode == nn.Training {
				lab = labels
			}
			if err := gr.Forward(x, lab); err != nil {
				t.Fatal(err)
			}
			out[i] = gr.Logits().Float32s()
		}
		logits[mode] = out
	}
	for mode, out := range logits {
		if e := numcheck.RelErr(out[1], out[0]); !(e <= 1e-5) {
			t.Errorf("%v: logits differ from the fixed model's by %.3g of the peak", mode, e)
		}
	}
}
