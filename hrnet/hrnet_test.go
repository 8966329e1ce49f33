package hrnet

import (
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/segkit/segkit/nn"
)

// Parameter counts of the official models (19 classes, from the reference's research count,
// matching the HRNet-Semantic-Segmentation README), and the 1/4-resolution logits.
func TestParamCountsAndOutputShape(t *testing.T) {
	want := map[string]int{"w18_small_v1": 1540819, "w18_small_v2": 3939579, "w18": 9641119, "w32": 29546515, "w48": 65859379}
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
		if got := net.Params.Count(); got != want[c.Name] {
			t.Errorf("%s: %d parameters, want %d", c.Name, got, want[c.Name])
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
