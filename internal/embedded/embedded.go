// Package embedded starts the servers `herald dev` runs inside its own process: a
// JetStream-enabled nats-server (the real server code, storing on disk) and a
// Redis-compatible store (miniredis, in memory) for single-node use without installing
// anything.
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

// StartRedis starts an in-memory Redis-compatible server on a free loopback port. It keeps
// nothing across restarts: windows, claims, rate-limit buckets and status records start
// empty (jobs themselves live in JetStream, so none is lost).
func StartRedis() (*miniredis.Miniredis, error) {
	m := miniredis.NewMiniRedis()
	m.ClockTTL(true) // let TTLs run on the wall clock, as in a real Redis
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("embedded redis: %w", err)
	}
	return m, nil
}
