//go:build device

package cuda

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestSearchOrder(t *testing.T) {
	got := searchDirs("/a::/b", []string{"/sp"}, []string{"cu13", "cudnn"})
	want := []string{"/a", "/b", "", "/usr/local/cuda/lib64", "/usr/local/cuda/lib", "/usr/local/nvidia/lib64",
		"/usr/lib/x86_64-linux-gnu", "/sp/nvidia/cu13/lib", "/sp/nvidia/cudnn/lib"}
	if !slices.Equal(got, want) {
		t.Errorf("search directories %q, want %q", got, want)
	}
	c := candidates(libNVRTC, []string{"/x", ""})
	if want := []string{"/x/libnvrtc.so.13", "/x/libnvrtc.so.12", "libnvrtc.so.13", "libnvrtc.so.12"}; !slices.Equal(c, want) {
		t.Errorf("candidates %q, want %q", c, want)
	}
}

// hasCUDA reports whether this machine's loader finds a driver (then the fallback tests, which
// need its absence, cannot run).
func hasCUDA(t *testing.T) bool {
	t.Helper()
	t.Setenv(EnvLibs, "")
	_, _, err := openLib(libCUDA, searchDirs("", nil, nil))
	return err == nil
}

// Without a driver, auto and cuda say so in one line and give the CPU (nil), never an error.
func TestMissingDriverFallsBackToCPU(t *testing.T) {
	if hasCUDA(t) {
		t.Skip("this machine has libcuda.so.1: the missing-library path cannot be exercised here")
	}
	for _, want := range []string{"auto", "cuda"} {
		t.Setenv(EnvLibs, t.TempDir())
		var out strings.Builder
		d, err := Select(want, &out)
		if err != nil || d != nil {
			t.Fatalf("--device %s without a driver: device %v, error %v", want, d, err)
		}
		line := out.String()
		if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "running on the CPU\n") || !strings.Contains(line, "libcuda.so.1") {
			t.Errorf("--device %s: %q is not one line naming libcuda.so.1 and the CPU", want, line)
		}
		t.Logf("--device %s: %s", want, strings.TrimSpace(line))
	}
}

// A library that is there but does not load is named with the loader's reason.
func TestBrokenLibraryIsReported(t *testing.T) {
	if hasCUDA(t) {
		t.Skip("this machine has libcuda.so.1: the loader would not reach the broken copy")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "libcuda.so.1"), []byte("not an ELF file"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvLibs, dir)
	var out strings.Builder
	if d, err := Select("auto", &out); d != nil || err != nil {
		t.Fatalf("device %v, error %v", d, err)
	}
	if !strings.Contains(out.String(), "libcuda.so.1") || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("broken library: %q", out.String())
	}
	t.Log(strings.TrimSpace(out.String()))
}

func TestDeviceValues(t *testing.T) {
	var out strings.Builder
	if d, err := Select("cpu", &out); d != nil || err != nil || out.Len() != 0 {
		t.Errorf("--device cpu: %v, %v, %q", d, err, out.String())
	}
	if _, err := Select("gpu", &out); err == nil || !strings.Contains(err.Error(), Devices) {
		t.Errorf("--device gpu: %v", err)
	}
}

// On a machine with the driver and libraries: the GPU starts and NVRTC compiles our kernels
// (the backend then reports itself incomplete). Skips, saying why, elsewhere.
func TestRealGPUStarts(t *testing.T) {
	libs, err := Open()
	if err != nil {
		t.Skipf("no CUDA here: %v", err)
	}
	_, err = newDevice(libs)
	if err == nil || !strings.Contains(err.Error(), "kernels compiled") {
		t.Fatalf("starting the GPU: %v", err)
	}
	t.Log(err)
}
