// Package embedded starts the servers `herald dev` runs: a JetStream-enabled nats-server in
// its own process (the real server code, storing on disk) and a durable Redis-compatible
// store (OpenRedis): a redis-server found on the PATH with an append-only file, else
// miniredis in the process with a snapshot on disk (Store), so that nothing needs installing.
package embedded

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/nats-io/nats-server/v2/server"
)

// NATS is an in-process nats-server.
type NATS struct {
	Server *server.Server
	URL    string
}

// StartNATS starts a JetStream-enabled nats-server on host:port (port -1: any free port),
// storing under dir.
func StartNATS(dir, host string, port int) (*NATS, error) {
	opts := &server.Options{
		ServerName: "herald-dev",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Join(dir, "jetstream"),
		NoLog:      true,
		NoSigs:     true,
		MaxPayload: 8 << 20,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(15 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded nats-server not ready within 15s")
	}
	return &NATS{Server: s, URL: s.ClientURL()}, nil
}

// Shutdown stops the server and waits until it has.
func (n *NATS) Shutdown() {
	n.Server.Shutdown()
	n.Server.WaitForShutdown()
}

// StartRedis starts an in-memory Redis-compatible server on a free loopback port, for
// examples and short tests. It keeps nothing across restarts, and its ClockTTL walks every
// key on each command, which slows it as keys accumulate: herald dev uses OpenRedis.
func StartRedis() (*miniredis.Miniredis, error) {
	m := miniredis.NewMiniRedis()
	m.ClockTTL(true) // let TTLs run on the wall clock, as in a real Redis
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("embedded redis: %w", err)
	}
	return m, nil
}
