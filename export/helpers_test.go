package export

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/segkit/segkit/dynopool"
	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/internal/numcheck"
	"github.com/segkit/segkit/nn"
	"github.com/segkit/segkit/onnx"
	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/segmentation/checkpoint"
)

// Tolerance of every parity check: max|ONNX − reference| ≤ tol · max|reference|. Both sides are
// float32 sums of the same terms in other orders (segkit's Winograd convolutions, the runtime's
// float32 coordinates); PyTorch's own float32 logits of these tiny HRNets lie 0.7–1.6e-6 of the
// peak from its float64 ones (tools/reference/hrnet_golden.py's models, eval mode, 3 seeds), so
// 10× that spread. A doubled batch-norm eps in the fold moves the logits by 1e-4.
const tol = 1e-5

// Anisotropic alphas, one axis at 1 (a pool that keeps the size still resamples).
var anisotropic = map[string][2]float32{
	"pools.stem.alpha": {2.3, 1.7}, "pools.transition1.alpha": {1.6, 2.4},
	"pools.transition2.alpha": {1, 1.3}, "pools.transition3.alpha": {1.8, 2.2},
}

// testModel is HRNetV2-w18_small_v1 with 5 classes and random weights and batch-norm statistics
// large enough that every layer matters (the official initialisation's N(0, 0.001) would leave
// the logits at the biases); alphas as given (nil: the initial 2).
func testModel(t testing.TB, resize hrnet.Resize, mean bool, alphas map[string][2]float32, seed uint64) Model {
	t.Helper()
	m, err := hrnet.New("w18_small_v1", 5, resize)
	if err != nil {
		t.Fatal(err)
	}
	if mean {
		m.Query, m.Up = dynopool.Mean, dynopool.Mean
	}
	return randomModel(t, m, alphas, seed)
}

// stridedModel is testModel's DynOPool model with ResizeThenStride and bilinear up-sampling.
func stridedModel(t testing.TB, alphas map[string][2]float32, seed uint64) Model {
	t.Helper()
	m, err := hrnet.New("w18_small_v1", 5, hrnet.DynOPool)
	if err != nil {
		t.Fatal(err)
	}
	m.Down, m.Up = hrnet.ResizeThenStride, dynopool.Centre
	return randomModel(t, m, alphas, seed)
}

func randomModel(t testing.TB, m *hrnet.Model, alphas map[string][2]float32, seed uint64) Model {
	t.Helper()
	net := nn.NewNet(m, seed)
	if _, err := net.Graph(nn.Inference, tensor.Shape{1, 3, 64, 64}); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	for _, p := range net.Params.All() {
		d, shape := p.Data(), p.Value.Shape()
		for i := range d {
			switch {
			case strings.HasSuffix(p.Name, ".alpha"):
				if a, ok := alphas[p.Name]; ok {
					d[i] = a[i]
				}
			case len(shape) == 4: // conv weight: He-normal over the fan-in
				d[i] = float32(rng.NormFloat64() * math.Sqrt(2/float64(shape[1]*shape[2]*shape[3])))
			case strings.HasSuffix(p.Name, "running_var"):
				d[i] = float32(0.5 + rng.Float64())
			case strings.HasSuffix(p.Name, ".weight") && !strings.HasPrefix(p.Name, "last_layer.3"):
				d[i] = float32(0.5 + rng.Float64()) // BN γ
			default: // BN β, running mean, conv biases
				d[i] = float32(0.2 * rng.NormFloat64())
			}
		}
	}
	// The classifier scaled so that the logits peak near 8: softmax then neither saturates nor
	// flattens, and the probabilities' check means something.
	logits, _ := segkitLogits(t, net, randomInput(1, 64, 64, seed), 1, 3, 64, 64)
	scale := float32(8 / numcheck.Peak(logits))
	for _, name := range []string{"last_layer.3.weight", "last_layer.3.bias"} {
		for i := range net.Params.Get(name).Data() {
			net.Params.Get(name).Data()[i] *= scale
		}
	}
	cfg := segmentation.DefaultConfig()
	cfg.Model, cfg.Resize, cfg.Crop = m.Name, string(m.Resize), 64
	names := make([]string, m.Classes)
	for i := range names {
		names[i] = fmt.Sprintf("class%d", i)
	}
	return Model{HRNet: m, Net: net, State: checkpoint.State{Config: cfg, Classes: names}}
}

// randomInput is n×3×h×w unit-normal values (an image after normalisation).
func randomInput(n, h, w int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 11))
	x := make([]float32, n*3*h*w)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// segkitLogits runs segkit's inference.
func segkitLogits(t testing.TB, net *nn.Net, x []float32, shape ...int) ([]float32, []int) {
	t.Helper()
	out, err := net.Predict(tensor.New(tensor.WithShape(shape...), tensor.WithBacking(append([]float32(nil), x...))))
	if err != nil {
		t.Fatal(err)
	}
	return out.Float32s(), out.Shape()
}

// export translates and encodes, and decodes the bytes again: every check reads what a runtime reads.
func export(t testing.TB, m Model, opt Options) (*onnx.Model, []byte) {
	t.Helper()
	om, err := ONNX(m, opt)
	if err != nil {
		t.Fatal(err)
	}
	raw := onnx.Marshal(om)
	back, err := onnx.Unmarshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	return back, raw
}

// checkParity compares N×K×h×w outputs: max error relative to the reference's largest value,
// and the argmax over K at every pixel where the reference's top two are not within the
// tolerance of each other (a near-tie may flip either way).
func checkParity(t testing.TB, what string, got, want []float32, shape []int) (relErr float64, flips int) {
	t.Helper()
	relErr = numcheck.RelErr(got, want)
	if !(relErr <= tol) {
		t.Errorf("%s: relative error %.3g > %g", what, relErr, tol)
	}
	n, k, hw := shape[0], shape[1], shape[2]*shape[3]
	margin := 2 * tol * numcheck.Peak(want)
	for b := 0; b < n; b++ {
		for i := 0; i < hw; i++ {
			best, second := argmax2(want, b, k, hw, i)
			if float64(want[(b*k+best)*hw+i]-want[(b*k+second)*hw+i]) <= margin {
				continue
			}
			if g, _ := argmax2(got, b, k, hw, i); g != best {
				flips++
			}
		}
	}
	if flips > 0 {
		t.Errorf("%s: the argmax differs at %d pixels away from ties", what, flips)
	}
	return relErr, flips
}

// argmax2 returns the best and second-best class of pixel i of image b.
func argmax2(v []float32, b, k, hw, i int) (int, int) {
	best, second := 0, -1
	for c := 1; c < k; c++ {
		switch x := v[(b*k+c)*hw+i]; {
		case x > v[(b*k+best)*hw+i]:
			best, second = c, best
		case second < 0 || x > v[(b*k+second)*hw+i]:
			second = c
		}
	}
	return best, max(second, 0)
}

// metaFloats reads a JSON array of numbers from the model's metadata.
func metaFloats(t testing.TB, m *onnx.Model, key string) []float64 {
	t.Helper()
	s, ok := m.Meta(key)
	if !ok {
		t.Fatalf("metadata has no %q", key)
	}
	var v []float64
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("metadata %s = %q: %v", key, s, err)
	}
	return v
}

// importerFixture is a PyTorch file of importer/testdata with its PyTorch logits.
type importerFixture struct {
	file, golden string
	align        bool
}

var importerFixtures = []importerFixture{
	{"mmseg_0x.pth", "mmseg", false},           // mmseg: two-step fuse up-sampling
	{"official_abn.pth", "official_abn", true}, // official HRNet: InPlaceABN folded, align_corners=True
}

// importerGoldens reads importer/testdata/import_golden.json: the 1×3×75×100 input and PyTorch's
// 1/4-resolution logits of each fixture.
func importerGoldens(t testing.TB) map[string]struct {
	Shape []int     `json:"shape"`
	Data  []float32 `json:"data"`
} {
	t.Helper()
	raw, err := os.ReadFile("../importer/testdata/import_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g map[string]json.RawMessage
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	out := map[string]struct {
		Shape []int     `json:"shape"`
		Data  []float32 `json:"data"`
	}{}
	for _, k := range []string{"input", "mmseg", "official_abn"} {
		v := out[k]
		if err := json.Unmarshal(g[k], &v); err != nil {
			t.Fatalf("import_golden.json %s: %v", k, err)
		}
		out[k] = v
	}
	return out
}

// importFixture imports a PyTorch fixture as segtrain import does.
func importFixture(t testing.TB, f importerFixture) Model {
	t.Helper()
	opt := checkpoint.ImportOptions{}
	if f.align { // official files only: mmseg's say it themselves
		opt.AlignCorners = &f.align
	}
	im, err := checkpoint.ImportModel("../importer/testdata/"+f.file, opt)
	if err != nil {
		t.Fatal(err)
	}
	m, net, err := checkpoint.LoadModel(im.Checkpoint(), len(im.State.Classes))
	if err != nil {
		t.Fatal(err)
	}
	return Model{HRNet: m, Net: net, State: im.State}
}
