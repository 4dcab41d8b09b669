package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// redisCall is one kind of Redis command in a round: the command, the class of its first key
// (keyClass; empty when it has none) and whether a Lua script ran it. INFO commandstats
// cannot tell a script's own commands from a client's, and counts every EVALSHA as one,
// whichever script it runs; MONITOR shows both, with the keys.
type redisCall struct {
	cmd, key string
	script   bool
}

// String is how the report names the call: "evalsha herald:n:{…}".
func (c redisCall) String() string {
	if c.key == "" {
		return c.cmd
	}
	return c.cmd + " " + c.key
}

// monitorEnd is the ECHO that tells the monitor it has read everything before it.
const monitorEnd = "heraldbench-monitor-end"

// monitor counts the commands redis-server runs, read from a MONITOR connection.
type monitor struct {
	conn   net.Conn
	done   chan struct{}
	calls  map[redisCall]int64
	err    error
	closed bool
}

// startMonitor opens a MONITOR connection to addr; commands are counted from then on.
func startMonitor(ctx context.Context, addr string) (*monitor, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	r := bufio.NewReaderSize(conn, 1<<20)
	if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
		conn.Close()
		return nil, err
	}
	if l, err := r.ReadString('\n'); err != nil || strings.TrimSpace(l) != "+OK" {
		conn.Close()
		return nil, fmt.Errorf("MONITOR: %q, %v", l, err)
	}
	m := &monitor{conn: conn, done: make(chan struct{}), calls: map[redisCall]int64{}}
	go func() {
		defer close(m.done)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				m.err = err
				return
			}
			src, args, ok := parseMonitorLine(strings.TrimSuffix(strings.TrimPrefix(l, "+"), "\r\n"))
			if !ok {
				continue
			}
			if len(args) == 2 && args[0] == "echo" && args[1] == monitorEnd {
				return
			}
			if c, ok := callOf(src, args); ok {
				m.calls[c]++
			}
		}
	}()
	return m, nil
}

// stop sends the end marker through rdb, waits until the monitor has read it (every command
// before it has been counted then) and returns the counts.
func (m *monitor) stop(ctx context.Context, rdb *redis.Client) (map[redisCall]int64, error) {
	if err := rdb.Echo(ctx, monitorEnd).Err(); err != nil {
		return nil, err
	}
	select {
	case <-m.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	m.close()
	if m.err != nil {
		return nil, fmt.Errorf("MONITOR: %w", m.err)
	}
	return m.calls, nil
}

func (m *monitor) close() {
	if !m.closed {
		m.closed = true
		m.conn.Close()
	}
}

// parseMonitorLine splits one MONITOR line, `1796413719.334673 [0 lua] "set" "k" "v"`, into
// its source (the client's address, or "lua") and the command's arguments, the command
// lower-cased; the arguments are quoted as sdscatrepr quotes them.
func parseMonitorLine(l string) (src string, args []string, ok bool) {
	open := strings.IndexByte(l, '[')
	end := strings.IndexByte(l, ']')
	if open < 0 || end < open {
		return "", nil, false
	}
	_, src, _ = strings.Cut(l[open+1:end], " ")
	rest := l[end+1:]
	for {
		rest = strings.TrimLeft(rest, " ")
		if rest == "" {
			break
		}
		if rest[0] != '"' {
			return "", nil, false
		}
		var b strings.Builder
		i := 1
		for ; i < len(rest) && rest[i] != '"'; i++ {
			if rest[i] != '\\' || i+1 >= len(rest) {
				b.WriteByte(rest[i])
				continue
			}
			i++
			switch c := rest[i]; c {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'a':
				b.WriteByte('\a')
			case 'b':
				b.WriteByte('\b')
			case 'x':
				if i+2 < len(rest) {
					if v, err := strconv.ParseUint(rest[i+1:i+3], 16, 8); err == nil {
						b.WriteByte(byte(v))
						i += 2
						continue
					}
				}
				b.WriteByte(c)
			default: // \" and \\
				b.WriteByte(c)
			}
		}
		if i >= len(rest) {
			return "", nil, false // unterminated
		}
		args = append(args, b.String())
		rest = rest[i+1:]
	}
	if len(args) == 0 {
		return "", nil, false
	}
	args[0] = strings.ToLower(args[0])
	return src, args, true
}

// callOf classifies one command of a MONITOR line; false for the benchmark's own reads and
// commands that are no part of a notification's cost (a connection's handshake).
func callOf(src string, args []string) (redisCall, bool) {
	c := redisCall{cmd: args[0], script: src == "lua"}
	switch c.cmd {
	case "info", "dbsize", "echo", "hello", "ping", "select", "scan", "memory", "monitor":
		return c, false
	case "client", "script", "config", "cluster", "command":
		if len(args) > 1 {
			c.cmd += " " + strings.ToLower(args[1])
		}
		return c, !strings.HasPrefix(c.cmd, "client")
	case "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro":
		// script numkeys key...
		if len(args) > 3 {
			if n, err := strconv.Atoi(args[2]); err == nil && n > 0 {
				c.key = keyClass(args[3])
			}
		}
		return c, true
	case "time", "multi", "exec", "discard":
		return c, true
	}
	if len(args) > 1 {
		c.key = keyClass(args[1])
	}
	return c, true
}
