// Package mpirun starts test programs under Open MPI's mpirun, with the flags a CI machine
// needs: --allow-run-as-root when root, --oversubscribe (more ranks than cores), --bind-to none
// (else each rank gets one core, and Go one thread) and --timeout (a hang becomes a failure).
package mpirun

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segkit/segkit/internal/testci"
)

// Find returns mpirun's path. Without it the test is skipped, except under CI (testci), where a
// missing Open MPI is a failure: scripts/setup.sh installs it.
func Find(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("mpirun")
	if err != nil {
		testci.Missing(t, "mpirun not found: install openmpi-bin (scripts/setup.sh --mpi) to run the MPI tests")
	}
	return path
}

// Command returns mpirun starting np copies of prog with args; mpirun ends them all after
// limit. env is added to the ranks' environment.
func Command(ctx context.Context, mpirun string, np int, limit time.Duration, env []string, prog string, args ...string) *exec.Cmd {
	flags := []string{"-np", strconv.Itoa(np), "--oversubscribe", "--bind-to", "none",
		"--timeout", strconv.Itoa(int(limit.Seconds()))}
	if os.Geteuid() == 0 {
		flags = append(flags, "--allow-run-as-root")
	}
	// Shared memory between the ranks of one machine; no network interfaces to probe.
	flags = append(flags, "--mca", "btl", "self,vader")
	for _, e := range env { // -x NAME exports mpirun's value to every rank
		if name, _, ok := strings.Cut(e, "="); ok {
			flags = append(flags, "-x", name)
		}
	}
	cmd := exec.CommandContext(ctx, mpirun, append(append(flags, prog), args...)...)
	cmd.Env = append(os.Environ(), env...)
	return cmd
}
