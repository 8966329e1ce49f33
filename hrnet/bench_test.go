package hrnet

import (
	"math/rand/v2"
	"testing"
	"time"

	"gorgonia.org/tensor"

	"github.com/segkit/segkit/nn"
)

// BenchmarkRebuild times rebuilding a net's training graph for batch 2 at about 512×512
// (forward, gorgonia.Grad, memory plan, in the net's arena): what a DynOPool size change costs.
func BenchmarkRebuild(b *testing.B) {
	for _, name := range []string{"w18_small_v2", "w48"} {
		b.Run(name, func(b *testing.B) {
			m, _ := New(name, 21, Fixed)
			net := nn.NewNet(m, 0)
			net.Keep = 1
			var took time.Duration
			net.OnBuild = func(_ string, d time.Duration) { took += d }
			sizes := []int{512, 508}
			if _, err := net.Graph(nn.Training, tensor.Shape{2, 3, 516, 516}); err != nil {
				b.Fatal(err) // parameters and arena exist from here on
			}
			took = 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s := sizes[i%2]
				if _, err := net.Graph(nn.Training, tensor.Shape{2, 3, s, s}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(took.Seconds()/float64(b.N), "s/build")
		})
	}
}

// benchInput is a batch of 2 random 512×512 images with labels for 21 classes.
func benchInput() (*tensor.Dense, *tensor.Dense) {
	rng := rand.New(rand.NewPCG(1, 1))
	x := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(2, 3, 512, 512))
	for i, v := 0, x.Float32s(); i < len(v); i++ {
		v[i] = float32(rng.NormFloat64())
	}
	lab := make([]int32, 2*512*512)
	for i := range lab {
		lab[i] = int32(rng.IntN(21))
	}
	return x, tensor.New(tensor.WithShape(2, 512, 512), tensor.WithBacking(lab))
}

var benchModels = []struct {
	name   string
	resize Resize
}{{"w18_small_v2", Fixed}, {"w18_small_v2", DynOPool}, {"w48", Fixed}, {"w48", DynOPool}}

// BenchmarkTrainStep times one forward + backward + SGD step at batch 2, 512×512 (alphas not
// stepped, so the sizes stay put, as the reference's bench.py does).
func BenchmarkTrainStep(b *testing.B) {
	for _, c := range benchModels {
		b.Run(c.name+"-"+string(c.resize), func(b *testing.B) {
			m, _ := New(c.name, 21, c.resize)
			net := nn.NewNet(m, 0)
			x, labels := benchInput()
			opt := &nn.SGD{LR: 0.01, Momentum: 0.9, WeightDecay: 5e-4, Groups: map[string]nn.Group{"alpha": {LRMult: 0}}}
			step := func() {
				if _, err := net.TrainStep(x, labels); err != nil {
					b.Fatal(err)
				}
				opt.Step(net.Params)
			}
			step() // build and warm up
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				step()
			}
		})
	}
}

// BenchmarkInfer times one inference forward at batch 2, 512×512.
func BenchmarkInfer(b *testing.B) {
	for _, c := range benchModels {
		b.Run(c.name+"-"+string(c.resize), func(b *testing.B) {
			m, _ := New(c.name, 21, c.resize)
			net := nn.NewNet(m, 0)
			x, _ := benchInput()
			gr, err := net.Graph(nn.Inference, x.Shape())
			if err != nil {
				b.Fatal(err)
			}
			if err := gr.Forward(x, nil); err != nil { // warm up
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := gr.Forward(x, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
