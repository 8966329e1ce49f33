package hrnet

import (
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
