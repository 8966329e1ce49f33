package infer

import (
	"github.com/segkit/segkit/nn"
	"github.com/segkit/segkit/voc"
)

// Mirror is mirror, for the external tests.
var Mirror = mirror

// Scores is Inference.scores, for the external tests.
func Scores(inf Inference, net *nn.Net, imgs []voc.RGB, probs bool) ([][]float32, int, error) {
	return inf.scores(net, imgs, probs)
}
