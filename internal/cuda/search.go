//go:build device

package cuda

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// EnvLibs names directories searched first for the NVIDIA libraries (colon-separated).
const EnvLibs = "SEGKIT_CUDA_LIBS"

// Library is one shared library segkit loads, by its sonames in order of preference.
type Library struct {
	What  string   // "CUDA driver", for messages
	Names []string // sonames, preferred first
	Wheel []string // pip wheels' site-packages/nvidia/<dir>/lib directories that hold it
}

var (
	libCUDA  = Library{What: "CUDA driver", Names: []string{"libcuda.so.1"}}
	libNVRTC = Library{What: "NVRTC", Names: []string{"libnvrtc.so.13", "libnvrtc.so.12"}, Wheel: []string{"cu13", "cuda_nvrtc", "cu12"}}
	libCUDNN = Library{What: "cuDNN", Names: []string{"libcudnn.so.9"}, Wheel: []string{"cudnn"}}
)

// searchDirs lists where the libraries are looked for, in order: $SEGKIT_CUDA_LIBS, then
// nothing (the dynamic loader's own path: LD_LIBRARY_PATH, ld.so.cache), then the CUDA
// toolkit's and the driver container's directories, then pip wheels' nvidia/*/lib under every
// site-packages found (PyTorch's CUDA 13 wheels put libnvrtc in nvidia/cu13/lib and cuDNN in
// nvidia/cudnn/lib). The empty string stands for the loader's path.
func searchDirs(env string, sitePackages []string, wheel []string) []string {
	var dirs []string
	for _, d := range strings.Split(env, ":") {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	dirs = append(dirs, "", "/usr/local/cuda/lib64", "/usr/local/cuda/lib", "/usr/local/nvidia/lib64", "/usr/lib/x86_64-linux-gnu")
	for _, sp := range sitePackages {
		for _, w := range wheel {
			dirs = append(dirs, filepath.Join(sp, "nvidia", w, "lib"))
		}
	}
	return slices.Compact(dirs)
}

// sitePackages finds Python's site-packages and dist-packages directories: the virtual
// environment's, the user's, and the system's (what pip installs wheels into).
func sitePackages() []string {
	var pats []string
	if v := os.Getenv("VIRTUAL_ENV"); v != "" {
		pats = append(pats, filepath.Join(v, "lib", "python3*", "site-packages"))
	}
	if h, err := os.UserHomeDir(); err == nil {
		pats = append(pats, filepath.Join(h, ".local", "lib", "python3*", "site-packages"))
	}
	pats = append(pats, "/usr/local/lib/python3*/dist-packages", "/usr/local/lib/python3*/site-packages",
		"/usr/lib/python3/dist-packages", "/usr/lib/python3*/site-packages", "/opt/conda/lib/python3*/site-packages")
	var out []string
	for _, p := range pats {
		m, _ := filepath.Glob(p)
		out = append(out, m...)
	}
	return out
}

// candidates returns the paths to try for lib, in order (a bare soname: the loader's search).
func candidates(lib Library, dirs []string) []string {
	var c []string
	for _, d := range dirs {
		for _, n := range lib.Names {
			if d == "" {
				c = append(c, n)
			} else {
				c = append(c, filepath.Join(d, n))
			}
		}
	}
	return c
}
