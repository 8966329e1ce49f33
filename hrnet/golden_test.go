package hrnet

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/segkit/segkit/dynopool"
	"github.com/segkit/segkit/internal/golden"
	"github.com/segkit/segkit/internal/numcheck"
	"github.com/segkit/segkit/nn"
)

type tinyModel struct {
	Config     string                           `json:"config"`
	NumClasses int                              `json:"num_classes"`
	Input      golden.Tensor                    `json:"input"`
	Labels     golden.Tensor                    `json:"labels"`
	Weights    map[string]*golden.Tensor        `json:"weights"`
	Alphas     map[string]map[string][2]float32 `json:"alphas"` // variant → pool → alpha
}

type tinyVariant struct {
	LevelSizes       map[string][2]int        `json:"level_sizes"`
	LogitsEval       golden.Tensor            `json:"logits_eval"`
	LogitsTrain      golden.Tensor            `json:"logits_train"`
	Loss             float64                  `json:"loss"`
	Grads            map[string]golden.Tensor `json:"grads"`
	RunningMeanAfter map[string]golden.Tensor `json:"running_mean_after"`

	// The float64 reference of the same step, PyTorch's own float32 spread from it, and the
	// tie envelope (tools/reference/hrnet_golden.py says how each is made).
	GradNorms64  map[string]float64       `json:"grad_norms64"`
	GradProj64   map[string]float64       `json:"grad_proj64"`
	GradSpread   map[string]float64       `json:"grad_spread"`
	GradEnv      map[string][2]float64    `json:"grad_env"`
	Grads64      map[string]golden.Tensor `json:"grads64"`
	GradsSpread  map[string]float64       `json:"grads_spread"`
	GradsEnv     map[string]float64       `json:"grads_env"`
	AlphaGrads64 map[string][2]float64    `json:"alpha_grads64"`
	AlphaSpread  map[string][2]float64    `json:"alpha_spread"`
	AlphaEnv     map[string][2]float64    `json:"alpha_env"`
	Ties         struct {
		ReLU  int     `json:"relu"`
		Max   int     `json:"max"`
		Tau   float64 `json:"tau"`
		Reach float64 `json:"reach"`
	} `json:"ties"`
	// The forward side: PyTorch's float32 train logits' distance from float64's (relative to
	// the peak), and the running statistics' float64 projections and float32 spread from them.
	LogitsTrainSpread float64            `json:"logits_train_spread"`
	RunningProj64     map[string]float64 `json:"running_proj64"`
	RunningSpread     map[string]float64 `json:"running_spread"`
}

// spreadFactor scales PyTorch's float32-vs-float64 spread into the bound for our float32
// result: both are float32 sums of the same terms in different orders (ours partly through
// Winograd transforms), so their errors are of the same order but not the same size.
const spreadFactor = 10

// gradients returns what the test compares per trained parameter: an alpha's two components,
// or the L2 norm and the projection (numcheck.Projection: sees sign flips, permutations and
// misrouted gradients that a norm does not) of any other gradient.
func gradients(net *nn.Net) map[string][]float64 {
	out := map[string][]float64{}
	for _, p := range net.Params.All() {
		if p.Buffer {
			continue
		}
		if strings.HasPrefix(p.Name, "pools.") {
			out[p.Name] = []float64{float64(p.Grad[0]), float64(p.Grad[1])}
			continue
		}
		out[p.Name] = []float64{numcheck.Norm(p.Grad), numcheck.Projection(p.Grad)}
	}
	return out
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// loadWeights copies the golden state_dict into the net's parameters by name; every parameter
// (alphas aside) must be in the file and every float tensor of the file must be a parameter.
func loadWeights(t *testing.T, net *nn.Net, weights map[string]*golden.Tensor) {
	t.Helper()
	seen := map[string]bool{}
	for _, p := range net.Params.All() {
		if strings.HasPrefix(p.Name, "pools.") {
			continue
		}
		w, ok := weights[p.Name]
		if !ok {
			t.Errorf("parameter %s is not in the official state_dict", p.Name)
			continue
		}
		v, err := w.F32()
		if err != nil || len(v) != len(p.Data()) {
			t.Fatalf("%s: %d values for %v (%v)", p.Name, len(v), p.Value.Shape(), err)
		}
		copy(p.Data(), v)
		seen[p.Name] = true
	}
	for name := range weights {
		if !seen[name] && !strings.HasSuffix(name, "num_batches_tracked") {
			t.Errorf("state_dict tensor %s has no parameter", name)
		}
	}
}

// goldenSets returns the directories holding a golden set (hrnet_tiny_model.json and one file
// per variant): testdata/tiny_* (seeds, batch sizes and input sizes in their names; the first
// two with -short) and the directory SEG_GOLDEN_DIR names, when set.
func goldenSets(t *testing.T) []string {
	t.Helper()
	sets, err := filepath.Glob(filepath.Join("testdata", "tiny_*"))
	if err != nil || len(sets) < minGoldenSets {
		t.Fatalf("%d golden sets in testdata (want at least %d): %v", len(sets), minGoldenSets, err)
	}
	if testing.Short() { // emulated CPUs (scripts/test.sh's arm64 pass): two sets, every variant
		sets = sets[:2]
	}
	if dir := os.Getenv(golden.EnvDir); dir != "" {
		sets = append(sets, dir)
	}
	return sets
}

var variants = []string{"fixed", "dynopool", "dynopool_alpha", "strided", "strided_alpha"}

// minGoldenSets guards against a set lost from testdata.
const minGoldenSets = 5

// HRNet (w18_small_v1, 8 classes) against the PyTorch reference with the same weights, in
// five variants (fixed; DynOPool at alpha 2 and with non-integer alphas, down-sampling by the
// sampling op and by a resize in front of the strided conv (ResizeThenStride, bilinear up)), at every
// golden set: level sizes, eval-mode logits, train-mode logits, loss, every parameter's
// gradient norm and projection, every alpha's gradient, full gradients of a few tensors and
// the running statistics after the training step.
func TestMatchesPyTorch(t *testing.T) {
	for _, dir := range goldenSets(t) {
		for _, variant := range variants {
			t.Run(filepath.Base(dir)+"/"+variant, func(t *testing.T) {
				net, want := trainStep(t, dir, variant)
				for _, e := range gradientErrors(net, want) {
					t.Error(e)
				}
				for _, e := range runningStatErrors(net, want) {
					t.Error(e)
				}
				worst, name := worstGradient(net, want)
				t.Logf("near-ties within float32 reach (≥ %.0e of the peak; PyTorch's own float32 error up to %.1e): %d ReLU, %d max; worst gradient error %.2g of its bound (%s)",
					want.Ties.Tau, want.Ties.Reach, want.Ties.ReLU, want.Ties.Max, worst, name)
			})
		}
	}
}

// The comparison itself must fail wrong gradients and statistics: each fault below, applied to
// a correct step's results, is reported in at least one golden set of each variant (a sign flip
// leaves a gradient's norm alone, and its projection can lie within a set's tie envelope: near
// ties differ from set to set), and a 1% error in every deep convolution whose bound allows it.
func TestGoldenCatchesFaults(t *testing.T) {
	for _, variant := range variants {
		t.Run(variant, func(t *testing.T) {
			caught := map[string]bool{} // fault → reported in some set
			scaled := 0
			for _, dir := range goldenSets(t) {
				scaled += catchFaults(t, dir, variant, caught)
			}
			for fault, ok := range caught {
				if !ok {
					t.Errorf("%s passes in every golden set", fault)
				}
			}
			switch {
			case scaled > 0:
				t.Logf("a 1%% error caught in %d deep convolutions over the sets", scaled)
			case strings.HasSuffix(variant, "_alpha"):
				// Non-integer alphas put hundreds of max-windows or bilinear reads within
				// float32 reach of a ReLU or max tie (PyTorch's own error there is ~1e-4 of the
				// peak): their envelope is over 0.5% on every deep layer, so 1% is within what
				// rounding can do.
				t.Logf("no deep convolution resolves a 1%% error here (tie envelope ≥ 0.5%%)")
			default:
				t.Errorf("no stage-3 or stage-4 convolution has a bound under 0.5%% of its gradient's norm in any set")
			}
		})
	}
}

// catchFaults applies each fault to a correct step of the golden set in dir and records in
// caught whether the comparison reported it; it returns how many deep convolutions had a 1%
// error reported (each whose bound is under 0.5% of its norm must).
func catchFaults(t *testing.T, dir, variant string, caught map[string]bool) int {
	net, want := trainStep(t, dir, variant)
	if errs := append(gradientErrors(net, want), runningStatErrors(net, want)...); len(errs) > 0 {
		t.Fatalf("%s: the correct step already fails: %v", dir, errs)
	}
	mutate := func(fault, name string, f func(v []float32), errors func() []string) bool {
		p := net.Params.Get(name)
		if p == nil {
			t.Fatalf("no parameter %s", name)
		}
		v := p.Data()
		if !p.Buffer {
			v = p.Grad
		}
		saved := slices.Clone(v)
		f(v)
		found := slices.ContainsFunc(errors(), func(e string) bool { return strings.Contains(e, name) })
		copy(v, saved)
		key := fault + " of " + name
		caught[key] = caught[key] || found
		return found
	}
	grads := func() []string { return gradientErrors(net, want) }
	stats := func() []string { return runningStatErrors(net, want) }
	mutate("negated gradient", "layer1.0.conv2.weight", func(v []float32) {
		for i := range v {
			v[i] = -v[i]
		}
	}, grads)
	mutate("reversed gradient", "stage2.0.branches.0.0.conv1.weight", slices.Reverse, grads)
	mutate("NaN in a gradient", "last_layer.3.weight", func(v []float32) { v[len(v)/2] = float32(math.NaN()) }, grads)
	mutate("NaN in a full gradient", "conv1.weight", func(v []float32) { v[7] = float32(math.NaN()) }, grads)
	// Swapped statistics: the running variance written as the mean.
	mutate("running variance as mean", "stage3.0.branches.1.0.bn1.running_mean", func(v []float32) {
		copy(v, net.Params.Get("stage3.0.branches.1.0.bn1.running_var").Data())
	}, stats)
	if variant != "fixed" {
		mutate("swapped alpha components", "pools.transition1.alpha", func(v []float32) { v[0], v[1] = v[1], v[0] }, grads)
	}
	// A gradient 1% off in a deep layer: every stage-3 and stage-4 block convolution whose
	// bound is under 0.5% of its norm here must see it.
	scaled := 0
	for _, p := range net.Params.All() {
		deep := strings.HasPrefix(p.Name, "stage3.") || strings.HasPrefix(p.Name, "stage4.")
		if !deep || !strings.Contains(p.Name, ".branches.") || !strings.HasSuffix(p.Name, ".weight") || len(p.Value.Shape()) != 4 {
			continue
		}
		if bound := gradientBound(want, p.Name, 0); bound < 5e-3*want.GradNorms64[p.Name] {
			if !mutate("gradient scaled by 1.01", p.Name, func(v []float32) {
				for i := range v {
					v[i] *= 1.01
				}
			}, grads) {
				t.Errorf("%s: a gradient of %s scaled by 1.01 passes (bound %.2g of its norm)", dir, p.Name, bound/want.GradNorms64[p.Name])
			}
			scaled++
		}
	}
	return scaled
}

// trainStep builds the golden set's model in the given variant with its weights and alphas,
// checks the level sizes and eval-mode logits, runs one training step and checks its logits
// and loss; the net is returned with the step's gradients and running statistics.
func trainStep(t *testing.T, dir, variant string) (*nn.Net, *tinyVariant) {
	t.Helper()
	var spec tinyModel
	want := new(tinyVariant)
	readJSON(t, filepath.Join(dir, "hrnet_tiny_model.json"), &spec)
	readJSON(t, filepath.Join(dir, "hrnet_tiny_"+variant+".json"), want)
	if len(want.GradNorms64) == 0 {
		t.Fatalf("%s: no float64 reference (made by an older generator than tools/reference/hrnet_golden.py)", dir)
	}
	resize := DynOPool
	if variant == "fixed" {
		resize = Fixed
	}
	m, err := New(spec.Config, spec.NumClasses, resize)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(variant, "strided") {
		m.Down, m.Up = ResizeThenStride, dynopool.Centre
	}
	net := nn.NewNet(m, 0)
	x := spec.Input.Dense(t)
	// Build once to create the parameters, then load the weights and set the alphas (which
	// decide the sizes, so the graphs are built again under their key).
	if _, err := net.Graph(nn.Inference, x.Shape()); err != nil {
		t.Fatal(err)
	}
	loadWeights(t, net, spec.Weights)
	for name, a := range spec.Alphas[variant] {
		p := net.Params.Get("pools." + name + ".alpha")
		if p == nil {
			t.Fatalf("no parameter pools.%s.alpha", name)
		}
		copy(p.Data(), a[:])
	}
	sizes := m.LevelSizes(net.Params, x.Shape()[2], x.Shape()[3])
	for l, name := range LevelNames {
		if want.LevelSizes[name] != sizes[l] {
			t.Errorf("level %s has size %v, want %v", name, sizes[l], want.LevelSizes[name])
		}
	}
	gr, err := net.Graph(nn.Inference, x.Shape())
	if err != nil {
		t.Fatal(err)
	}
	if err := gr.Forward(x, nil); err != nil {
		t.Fatal(err)
	}
	// 10× PyTorch's own float32 spread of these logits from float64 (0.7–1.6e-6 of the peak).
	if e := numcheck.RelErr(gr.Logits().Float32s(), want.LogitsEval.Data); !(e <= 1e-5) {
		t.Errorf("eval logits relative error %.3g", e)
	} else {
		t.Logf("eval logits relative error %.2g", e)
	}
	lab, err := spec.Labels.I32()
	if err != nil {
		t.Fatal(err)
	}
	labels := tensor.New(tensor.WithShape(spec.Labels.Shape...), tensor.WithBacking(lab))
	tr, err := net.Graph(nn.Training, x.Shape())
	if err != nil {
		t.Fatal(err)
	}
	loss, err := tr.Step(x, labels)
	if err != nil {
		t.Fatal(err)
	}
	// Train-mode batch norm over the smallest maps amplifies float32 rounding: 10× PyTorch's own
	// spread there, at least the eval logits' bound.
	if e := numcheck.RelErr(tr.Logits().Float32s(), want.LogitsTrain.Data); !(e <= 1e-5+spreadFactor*want.LogitsTrainSpread) {
		t.Errorf("train logits relative error %.3g (PyTorch's float32 spread %.2g)", e, want.LogitsTrainSpread)
	}
	if !numcheck.Close(float64(loss.Total), want.Loss, 1e-5*want.Loss) {
		t.Errorf("loss %v, want %v", loss.Total, want.Loss)
	}
	return net, want
}

// gradientBound is how far component i of a parameter's compared gradient may lie from the
// float64 reference: PyTorch's own float32 spread, scaled for another summation order, plus
// the tie envelope (what flipping every gate within float32 reach of its tie can move).
func gradientBound(want *tinyVariant, name string, i int) float64 {
	if pool, ok := strings.CutPrefix(name, "pools."); ok {
		pool = strings.TrimSuffix(pool, ".alpha")
		s := want.AlphaSpread[pool]
		return spreadFactor*max(s[0], s[1]) + want.AlphaEnv[pool][i]
	}
	return spreadFactor*want.GradSpread[name] + want.GradEnv[name][i]
}

// reference returns a parameter's compared gradient in the float64 reference.
func reference(want *tinyVariant, name string) ([]float64, bool) {
	if pool, ok := strings.CutPrefix(name, "pools."); ok {
		a, ok := want.AlphaGrads64[strings.TrimSuffix(pool, ".alpha")]
		return a[:], ok
	}
	norm, ok := want.GradNorms64[name]
	proj, ok2 := want.GradProj64[name]
	_, ok3 := want.GradSpread[name]
	return []float64{norm, proj}, ok && ok2 && ok3
}

// gradientErrors compares every trained parameter's gradient with the float64 reference (an
// alpha's two components, any other tensor's norm and projection, and the full gradients the
// file holds) and describes each one out of its bound.
func gradientErrors(net *nn.Net, want *tinyVariant) []string {
	var errs []string
	got := gradients(net)
	for _, p := range net.Params.All() {
		if p.Buffer {
			continue
		}
		ref, ok := reference(want, p.Name)
		if !ok {
			errs = append(errs, fmt.Sprintf("no reference gradient for %s", p.Name))
			continue
		}
		for i, g := range got[p.Name] {
			if bound := gradientBound(want, p.Name, i); !numcheck.Close(g, ref[i], bound) {
				errs = append(errs, fmt.Sprintf("gradient of %s: component %d is %.7g, want %.7g ± %.2g", p.Name, i, g, ref[i], bound))
			}
		}
	}
	if len(want.Grads64) == 0 {
		errs = append(errs, "no full reference gradients")
	}
	for name, ref := range want.Grads64 {
		p := net.Params.Get(name)
		if p == nil || !slices.Equal(p.Value.Shape(), tensor.Shape(ref.Shape)) {
			errs = append(errs, fmt.Sprintf("full gradient of %s %v has no parameter of that shape", name, ref.Shape))
			continue
		}
		bound := spreadFactor*want.GradsSpread[name] + want.GradsEnv[name]
		if diff, _ := numcheck.MaxDiff(p.Grad, ref.Data); !(diff <= bound) {
			errs = append(errs, fmt.Sprintf("full gradient of %s differs from the reference's by %.3g (bound %.3g)", name, diff, bound))
		}
	}
	return errs
}

// worstGradient returns the largest ratio of a compared gradient's error to its bound, for
// the log.
func worstGradient(net *nn.Net, want *tinyVariant) (float64, string) {
	worst, worstName := 0.0, ""
	for name, g := range gradients(net) {
		ref, ok := reference(want, name)
		if !ok {
			continue
		}
		for i := range g {
			if e := math.Abs(g[i]-ref[i]) / gradientBound(want, name, i); e > worst {
				worst, worstName = e, name
			}
		}
	}
	return worst, worstName
}

// runningStatErrors compares bn1's running mean after the training step with the reference's
// values, and every batch norm's running mean and variance with the float64 projection.
func runningStatErrors(net *nn.Net, want *tinyVariant) []string {
	var errs []string
	rm := want.RunningMeanAfter["bn1"]
	if e := numcheck.RelErr(net.Params.Get("bn1.running_mean").Data(), rm.Data); !(e <= 1e-4) {
		errs = append(errs, fmt.Sprintf("bn1.running_mean relative error %.3g", e))
	}
	checked := 0
	for _, p := range net.Params.All() {
		if !strings.HasSuffix(p.Name, ".running_mean") && !strings.HasSuffix(p.Name, ".running_var") {
			continue
		}
		ref, ok := want.RunningProj64[p.Name]
		spread, ok2 := want.RunningSpread[p.Name]
		if !ok || !ok2 {
			errs = append(errs, fmt.Sprintf("no reference for %s", p.Name))
			continue
		}
		bound := 1e-5*numcheck.Norm(p.Data()) + spreadFactor*spread
		if got := numcheck.Projection(p.Data()); !numcheck.Close(got, ref, bound) {
			errs = append(errs, fmt.Sprintf("%s projection %.7g, want %.7g ± %.2g", p.Name, got, ref, bound))
		}
		checked++
	}
	if checked != len(want.RunningProj64) {
		errs = append(errs, fmt.Sprintf("%d running statistics checked, the reference has %d", checked, len(want.RunningProj64)))
	}
	return errs
}
