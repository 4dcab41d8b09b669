package app

import (
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/herald-notify/herald/internal/api"
	"github.com/herald-notify/herald/internal/config"
)

// maxHeaderBytes bounds a request's headers: Herald's are a bearer key and a signature.
const maxHeaderBytes = 64 << 10

// opsMaxConns bounds the ops listener's connections: probes and a scraper.
const opsMaxConns = 64

// opsProfileTimeout is the ops server's write deadline when profiles are served: a CPU
// profile takes as long as asked (net/http/pprof refuses one longer than the deadline).
const opsProfileTimeout = 5 * time.Minute

// PublicServer is the API's server: every phase of a request has a deadline, so a client
// that sends its headers or its body slowly (slowloris) holds a connection for a bounded
// time only.
func PublicServer(cfg *config.Config, h *api.Server) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.HTTPReadHeaderTimeout,
		ReadTimeout:       cfg.HTTPReadTimeout,
		WriteTimeout:      cfg.HTTPWriteTimeout,
		IdleTimeout:       cfg.HTTPIdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}

// OpsServer serves the ops routes with the same deadlines, longer for writes when profiles
// are on.
func OpsServer(cfg *config.Config, h *api.Server) *http.Server {
	write := cfg.HTTPWriteTimeout
	if cfg.Pprof {
		write = max(write, opsProfileTimeout)
	}
	return &http.Server{
		Handler:           h.OpsHandler(),
		ReadHeaderTimeout: cfg.HTTPReadHeaderTimeout,
		ReadTimeout:       cfg.HTTPReadTimeout,
		WriteTimeout:      write,
		IdleTimeout:       cfg.HTTPIdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}

// LimitListener accepts at most n connections at once (HERALD_HTTP_MAX_CONNS): beyond that
// new connections wait in the kernel's backlog until one closes, instead of each costing a
// goroutine and buffers.
func LimitListener(l net.Listener, n int) net.Listener {
	return &limitListener{Listener: l, sem: make(chan struct{}, max(n, 1)), done: make(chan struct{})}
}

type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
