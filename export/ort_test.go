package export

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/internal/numcheck"
	"github.com/segkit/segkit/internal/testci"
	"github.com/segkit/segkit/onnx"
)

// The onnxruntime the tests run exported graphs in: the CPU library of the npm package
// onnxruntime-node, which scripts/setup.sh --onnxruntime puts in the user's cache
// (SEGKIT_ONNXRUNTIME_LIB names another). onnxruntime_go opens it at run time (dlopen), so
// nothing else needs it.
const ortVersion = "1.30.0"

var (
	ortOnce sync.Once
	ortErr  error
)

// onnxruntime loads the library once; without it the test skips, saying why, except in CI
// (CI=true), where a skipped parity check would pass unseen, so it fails.
func onnxruntime(t testing.TB) {
	t.Helper()
	lib := os.Getenv("SEGKIT_ONNXRUNTIME_LIB")
	if lib == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = "~/.cache"
		}
		lib = filepath.Join(cache, "segkit", "onnxruntime-"+ortVersion, "libonnxruntime.so.1")
	}
	if _, err := os.Stat(lib); err != nil {
		testci.Missing(t, fmt.Sprintf("no onnxruntime library at %s: run scripts/setup.sh --onnxruntime (or set SEGKIT_ONNXRUNTIME_LIB)", lib))
	}
	ortOnce.Do(func() {
		ort.SetSharedLibraryPath(lib)
		ortErr = ort.InitializeEnvironment()
	})
	if ortErr != nil {
		t.Fatalf("onnxruntime %s: %v", lib, ortErr)
	}
}

// session opens an exported model in onnxruntime with threads intra-op threads.
func session(t testing.TB, m *onnx.Model, raw []byte, threads int) *ort.DynamicAdvancedSession {
	t.Helper()
	opts, err := ort.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer opts.Destroy()
	if err := opts.SetIntraOpNumThreads(threads); err != nil {
		t.Fatal(err)
	}
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(raw, []string{m.Graph.Inputs[0].Name}, []string{m.Graph.Outputs[0].Name}, opts)
	if err != nil {
		t.Fatalf("onnxruntime refuses the model: %v", err)
	}
	return s
}

// runORT is a runner: one run of the model in onnxruntime.
func runORT(t testing.TB, m *onnx.Model, raw []byte, x []float32, shape []int) ([]float32, []int64, []int) {
	t.Helper()
	s := session(t, m, raw, runtime.GOMAXPROCS(0))
	defer s.Destroy()
	dims := make([]int64, len(shape))
	for i, d := range shape {
		dims[i] = int64(d)
	}
	in, err := ort.NewTensor(ort.NewShape(dims...), x)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Destroy()
	outs := []ort.Value{nil}
	if err := s.Run([]ort.Value{in}, outs); err != nil {
		t.Fatalf("onnxruntime: %v", err)
	}
	defer outs[0].Destroy()
	var outShape []int
	for _, d := range outs[0].GetShape() {
		outShape = append(outShape, int(d))
	}
	switch o := outs[0].(type) {
	case *ort.Tensor[float32]:
		return slices.Clone(o.GetData()), nil, outShape
	case *ort.Tensor[int64]:
		return nil, slices.Clone(o.GetData()), outShape
	}
	t.Fatalf("onnxruntime returned a %T", outs[0])
	return nil, nil, nil
}

// In onnxruntime the exported graphs compute segkit's logits (and PyTorch's, for imported
// models): the cases of TestParityReference.
func TestParityONNXRuntime(t *testing.T) {
	onnxruntime(t)
	t.Logf("onnxruntime %s", ort.GetVersion())
	testParity(t, runORT)
}

// In onnxruntime the up-sampled probabilities and labels equal segkit's inference.
func TestOutputsONNXRuntime(t *testing.T) {
	onnxruntime(t)
	testOutputs(t, runORT)
}

// onnxruntime reads the metadata a deployment needs.
func TestMetadataONNXRuntime(t *testing.T) {
	onnxruntime(t)
	m := testModel(t, hrnet.DynOPool, false, anisotropic, 1)
	om, raw := export(t, m, Options{H: 75, W: 100, Batch: 1})
	md, err := ort.GetModelMetadataWithONNXData(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer md.Destroy()
	producer, _ := md.GetProducerName()
	for _, p := range om.Metadata {
		v, ok, err := md.LookupCustomMetadataMap(p.Key)
		if err != nil || !ok || v != p.Value {
			t.Errorf("metadata %s: onnxruntime reads %q (%v, %v), want %q", p.Key, v, ok, err, p.Value)
		}
	}
	if producer != "segkit" || len(om.Metadata) < 10 {
		t.Errorf("producer %q, %d metadata entries", producer, len(om.Metadata))
	}
}

// A real-size model: HRNetV2-w18_small_v2 (21 classes, random weights, DynOPool with anisotropic
// alphas and fixed) at 512×683 (VOC's test size of a 500×375 image), exported and run in
// onnxruntime against segkit: parity (reported as relerr) and time per image on all cores
// (wall clock, and the CPU time of all threads).
//
//	go test ./export -run XXX -bench RealSize -benchtime 5x
func BenchmarkRealSize(b *testing.B) {
	onnxruntime(b)
	const h, w = 512, 683
	for _, resize := range []hrnet.Resize{hrnet.Fixed, hrnet.DynOPool} {
		hm, err := hrnet.New("w18_small_v2", 21, resize)
		if err != nil {
			b.Fatal(err)
		}
		m := randomModel(b, hm, anisotropic, 1)
		x := randomInput(1, h, w, 2)
		ours, shape := segkitLogits(b, m.Net, x, 1, 3, h, w)
		start := time.Now()
		om, raw := export(b, m, Options{H: h, W: w, Batch: 1})
		exportTime := time.Since(start)
		got, _, _ := runORT(b, om, raw, x, []int{1, 3, h, w})
		relErr, flips := checkParity(b, string(resize), got, ours, shape)
		b.Run(string(resize)+"/segkit", func(b *testing.B) {
			segkitLogits(b, m.Net, x, 1, 3, h, w) // the graph built
			b.ResetTimer()
			cpu := cpuTime()
			for i := 0; i < b.N; i++ {
				segkitLogits(b, m.Net, x, 1, 3, h, w)
			}
			b.ReportMetric(float64(cpuTime()-cpu)/1e6/float64(b.N), "cpu-ms/op")
		})
		b.Run(string(resize)+"/onnxruntime", func(b *testing.B) {
			s := session(b, om, raw, runtime.GOMAXPROCS(0))
			defer s.Destroy()
			in, _ := ort.NewTensor(ort.NewShape(1, 3, h, w), x)
			out, _ := ort.NewEmptyTensor[float32](ort.NewShape(int64(shape[0]), int64(shape[1]), int64(shape[2]), int64(shape[3])))
			defer in.Destroy()
			defer out.Destroy()
			if err := s.Run([]ort.Value{in}, []ort.Value{out}); err != nil { // warm up
				b.Fatal(err)
			}
			b.ResetTimer()
			cpu := cpuTime()
			for i := 0; i < b.N; i++ {
				if err := s.Run([]ort.Value{in}, []ort.Value{out}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu)/1e6/float64(b.N), "cpu-ms/op")
			b.ReportMetric(relErr, "relerr")
		})
		b.Logf("%s: %d bytes of ONNX, exported in %v; max |ORT − segkit| / max |segkit| = %.3g (peak %.3g), %d argmax flips away from ties",
			resize, len(raw), exportTime.Round(time.Millisecond), relErr, numcheck.Peak(ours), flips)
	}
}
