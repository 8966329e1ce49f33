// Package mpi is segkit's binding to Open MPI (Debian's libopenmpi-dev), built with the mpi build
// tag: `go build -tags mpi`. Without the tag the package is empty and nothing links against MPI.
//
// Every MPI call runs on one goroutine locked to the OS thread that initialised MPI
// (MPI_THREAD_FUNNELED), which also keeps the order of collectives the same on every rank.
// Collectives are non-blocking calls completed by polling MPI_Test with growing sleeps, so a rank
// waiting for the others does not spin a core (Open MPI's blocking calls busy-poll), and a wait
// longer than the World's timeout is an error instead of a hang.
package mpi
