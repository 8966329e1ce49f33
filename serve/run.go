package serve

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// Serve answers requests on l with s until ctx is done (SIGTERM, SIGINT), then shuts down
// gracefully: /readyz and new segment requests answer 503, the listener closes, requests in
// flight are finished (for up to grace), then the worker stops.
func Serve(ctx context.Context, l net.Listener, s *Server, grace time.Duration) error {
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		// A slow upload may hold a connection no longer than a request may take.
		ReadTimeout: s.opt.Timeout,
		IdleTimeout: 2 * time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	select {
	case err := <-errc:
		s.Close()
		return err
	case <-ctx.Done():
	}
	s.Drain()
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := hs.Shutdown(sctx)
	s.Close()
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
