package hrnet

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gorgonia.org/tensor"

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
	GradNorms        map[string]float64       `json:"grad_norms"`
	GradProj         map[string]float64       `json:"grad_proj"`
	Grads            map[string]golden.Tensor `json:"grads"`
	AlphaGrads       map[string][2]float64    `json:"alpha_grads"`
	RunningMeanAfter map[string]golden.Tensor `json:"running_mean_after"`
	RunningProj      map[string]float64       `json:"running_proj"`
}

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

// gradientNoise runs the training step on x with 1e-6 relative noise a few times and returns
// how far each compared gradient moves. With DynOPool the gradients go through the max of
// four queries, which float32 rounding of near-ties (ReLU zeros against tiny values) can flip:
// where that happens, our own gradients move under such noise, and the reference's may differ
// by as much. Fixed mode has no such max: no noise is measured. The weights are not updated;
// the running statistics are put back.
func gradientNoise(t *testing.T, net *nn.Net, tr *nn.Graph, x, labels *tensor.Dense) map[string]float64 {
	t.Helper()
	noise := map[string]float64{}
	if net.Params.Get("pools.stem.alpha") == nil {
		return noise
	}
	saved := map[*nn.Param][]float32{}
	for _, p := range net.Params.All() {
		if p.Buffer {
			saved[p] = append([]float32(nil), p.Data()...)
		}
	}
	defer func() {
		for p, v := range saved {
			copy(p.Data(), v)
		}
	}()
	rng := rand.New(rand.NewPCG(1, 2))
	var base map[string][]float64
	for trial := 0; trial < 4; trial++ {
		xn := x.Clone().(*tensor.Dense)
		if trial > 0 {
			for i, v := range xn.Float32s() {
				xn.Float32s()[i] = v * (1 + 1e-6*float32(rng.NormFloat64()))
			}
		}
		if _, err := tr.Step(xn, labels); err != nil {
			t.Fatal(err)
		}
		g := gradients(net)
		if trial == 0 {
			base = g
			continue
		}
		for name, v := range g {
			for i := range v {
				noise[name] = max(noise[name], math.Abs(v[i]-base[name][i]))
			}
		}
	}
	return noise
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

// HRNet (w18_small_v1, 8 classes) against the PyTorch reference with the same weights, in
// the three variants (fixed; DynOPool at alpha 2; DynOPool with non-integer alphas): level
// sizes, eval-mode logits, train-mode logits, loss, every parameter's gradient norm, every
// alpha's gradient and bn1's running mean after the training step.
func TestMatchesPyTorch(t *testing.T) {
	for _, variant := range []string{"fixed", "dynopool", "dynopool_alpha"} {
		files, err := golden.Files("hrnet_tiny_" + variant + ".json")
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range files {
			checkVariant(t, path, variant)
		}
	}
}

func checkVariant(t *testing.T, path, variant string) {
	var spec tinyModel
	var want tinyVariant
	readJSON(t, filepath.Join(filepath.Dir(path), "hrnet_tiny_model.json"), &spec)
	readJSON(t, path, &want)
	resize := DynOPool
	if variant == "fixed" {
		resize = Fixed
	}
	m, err := New(spec.Config, spec.NumClasses, resize)
	if err != nil {
		t.Fatal(err)
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
			t.Errorf("%s: level %s has size %v, want %v", path, name, sizes[l], want.LevelSizes[name])
		}
	}
	gr, err := net.Graph(nn.Inference, x.Shape())
	if err != nil {
		t.Fatal(err)
	}
	if err := gr.Forward(x, nil); err != nil {
		t.Fatal(err)
	}
	if e := numcheck.RelErr(gr.Logits().Float32s(), want.LogitsEval.Data); !(e <= 1e-4) {
		t.Errorf("%s: eval logits relative error %.3g", path, e)
	} else {
		t.Logf("%s: eval logits relative error %.2g", path, e)
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
	noise := gradientNoise(t, net, tr, x, labels)
	loss, err := tr.Step(x, labels)
	if err != nil {
		t.Fatal(err)
	}
	if e := numcheck.RelErr(tr.Logits().Float32s(), want.LogitsTrain.Data); !(e <= 1e-4) {
		t.Errorf("%s: train logits relative error %.3g", path, e)
	}
	if !numcheck.Close(float64(loss.Total), want.Loss, 1e-5*want.Loss) {
		t.Errorf("%s: loss %v, want %v", path, loss.Total, want.Loss)
	}
	worst, worstName := checkGradients(t, path, net, &want, noise)
	checkRunningStats(t, path, net, &want)
	t.Logf("%s: loss %.7f (want %.7f), worst gradient error %.2g (%s)", path, loss.Total, want.Loss, worst, worstName)
}

// checkGradients compares every trained parameter's gradient with the reference: an alpha's
// two components, any other tensor's norm and projection, and the full gradients the file
// holds. It returns the worst error relative to its scale, for the log.
func checkGradients(t *testing.T, path string, net *nn.Net, want *tinyVariant, noise map[string]float64) (float64, string) {
	t.Helper()
	// A conv bias followed by batch norm has an exactly zero gradient (BN removes shifts):
	// there both sides hold float32 noise, so errors are relative to at least 1e-6 of the
	// largest norm.
	var largest float64
	for _, v := range want.GradNorms {
		largest = max(largest, v)
	}
	const bound = 1e-3
	worst, worstName := 0.0, ""
	got := gradients(net)
	for _, p := range net.Params.All() {
		if p.Buffer {
			continue
		}
		var ref []float64
		if a, ok := want.AlphaGrads[strings.TrimSuffix(strings.TrimPrefix(p.Name, "pools."), ".alpha")]; ok && strings.HasPrefix(p.Name, "pools.") {
			ref = a[:]
		} else if norm, ok := want.GradNorms[p.Name]; !ok {
			t.Errorf("%s: no reference gradient for %s", path, p.Name)
			continue
		} else if proj, ok := want.GradProj[p.Name]; !ok {
			t.Errorf("%s: no reference gradient projection for %s", path, p.Name)
			continue
		} else {
			ref = []float64{norm, proj}
		}
		// Relative to the larger of the two components for an alpha, to the norm for a
		// tensor (the projection's error is of the order of the gradient's norm times its
		// relative error): one component can be a near-cancelling sum, whose float32
		// rounding differs by more.
		scale := max(1e-6*largest, math.Abs(ref[0]))
		if strings.HasPrefix(p.Name, "pools.") {
			scale = max(scale, math.Abs(ref[1]))
			if testing.Verbose() {
				t.Logf("%s: %s gradient %.6g, reference %.6g, noise %.2g", path, p.Name, got[p.Name], ref, noise[p.Name])
			}
		}
		for i, g := range got[p.Name] {
			if !numcheck.Close(g, ref[i], bound*scale+2*noise[p.Name]) {
				t.Errorf("%s: gradient of %s: component %d is %.7g, want %.7g (scale %.3g, noise %.2g)", path, p.Name, i, g, ref[i], scale, noise[p.Name])
			}
			if e := math.Abs(g-ref[i]) / scale; e > worst {
				worst, worstName = e, p.Name
			}
		}
	}
	if len(want.Grads) == 0 {
		t.Errorf("%s: no full reference gradients", path)
	}
	for name, ref := range want.Grads {
		p := net.Params.Get(name)
		if p == nil || !slices.Equal(p.Value.Shape(), tensor.Shape(ref.Shape)) {
			t.Errorf("%s: full gradient of %s %v has no parameter of that shape", path, name, ref.Shape)
			continue
		}
		diff, peak := numcheck.MaxDiff(p.Grad, ref.Data)
		if !(diff <= bound*peak+2*noise[name]) {
			t.Errorf("%s: gradient of %s differs from the reference's by %.3g (scale %.3g)", path, name, diff, peak)
		}
	}
	return worst, worstName
}

// checkRunningStats compares bn1's running mean after the training step with the reference's
// values, and every batch norm's running mean and variance with its projection.
func checkRunningStats(t *testing.T, path string, net *nn.Net, want *tinyVariant) {
	t.Helper()
	rm := want.RunningMeanAfter["bn1"]
	if e := numcheck.RelErr(net.Params.Get("bn1.running_mean").Data(), rm.Data); !(e <= 1e-4) {
		t.Errorf("%s: bn1 running mean relative error %.3g", path, e)
	}
	checked := 0
	for _, p := range net.Params.All() {
		if !strings.HasSuffix(p.Name, ".running_mean") && !strings.HasSuffix(p.Name, ".running_var") {
			continue
		}
		ref, ok := want.RunningProj[p.Name]
		if !ok {
			t.Errorf("%s: no reference for %s", path, p.Name)
			continue
		}
		if got := numcheck.Projection(p.Data()); !numcheck.Close(got, ref, 1e-5*numcheck.Norm(p.Data())) {
			t.Errorf("%s: %s projection %.7g, want %.7g", path, p.Name, got, ref)
		}
		checked++
	}
	if checked != len(want.RunningProj) {
		t.Errorf("%s: %d running statistics checked, the reference has %d", path, checked, len(want.RunningProj))
	}
}
