//go:build device

package cuda

import (
	"errors"
	"fmt"
	"io"

	"github.com/segkit/segkit/internal/device"
)

// Devices are the values of --device.
const Devices = "cpu, cuda or auto"

// Select returns the device --device asks for: nil for the CPU. With auto or cuda, a missing
// driver or library, or a backend that cannot start, is said in one line on w and the CPU
// runs (a missing GPU is never an error, so one binary serves both kinds of machine).
func Select(want string, w io.Writer) (device.Device, error) {
	switch want {
	case "cpu":
		return nil, nil
	case "auto", "cuda", "":
	default:
		return nil, fmt.Errorf("--device %q: want %s", want, Devices)
	}
	d, err := open()
	if err != nil {
		fmt.Fprintf(w, "segkit: no CUDA device (%v): running on the CPU\n", oneLine(err))
		return nil, nil
	}
	fmt.Fprintf(w, "segkit: running on %s\n", d.Name())
	return d, nil
}

// open loads the libraries and starts the backend on GPU 0.
func open() (device.Device, error) {
	libs, err := Open()
	if err != nil {
		return nil, err
	}
	return newDevice(libs)
}

// ErrIncomplete: the libraries and a GPU are there, but this build's backend lacks a part.
var ErrIncomplete = errors.New("segkit's CUDA backend is incomplete")

func oneLine(err error) string {
	s := err.Error()
	for i, r := range s {
		if r == '\n' {
			return s[:i]
		}
	}
	return s
}
