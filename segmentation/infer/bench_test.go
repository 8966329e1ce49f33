package infer_test

import (
	"testing"

	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/nn"
	"github.com/segkit/segkit/segmentation/infer"
	"github.com/segkit/segkit/voc"
	"gorgonia.org/tensor"
)

// BenchmarkSegment500x375 is segpredict's per-image work on a 500×375 image, whole mode with
// the mmseg test rule (fit into 2048×512: the network sees 683×512), random weights.
func BenchmarkSegment500x375(b *testing.B) {
	for _, name := range []string{"w18_small_v2", "w48"} {
		b.Run(name, func(b *testing.B) {
			m, _ := hrnet.New(name, 21, hrnet.Fixed)
			net := nn.NewNet(m, 0)
			if _, err := net.Graph(nn.Inference, tensor.Shape{1, 3, 64, 64}); err != nil {
				b.Fatal(err)
			}
			p := &infer.Predictor{Net: net, Model: m, Classes: voc.ClassNames, Inference: infer.Inference{Aug: voc.DefaultAugment(512)}}
			img := testImage(500, 375, false)
			if _, err := p.Segment(img); err != nil { // build the graph
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := p.Segment(img); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
