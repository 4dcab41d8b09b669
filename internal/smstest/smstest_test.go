package smstest_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/herald-notify/herald/internal/sms"
	"github.com/herald-notify/herald/internal/smstest"
)

func udh8(ref, total, seq byte) []byte { return []byte{0x00, 0x03, ref, total, seq} }

func TestReassemble(t *testing.T) {
	t.Parallel()
	const to, from = "+79001234567", "Shop"
	part := func(udh []byte, text string) smstest.Part {
		return smstest.Part{To: to, From: from, Encoding: sms.GSM7, UDH: udh, Text: text}
	}
	msg := func(text string, segments int) smstest.Delivery {
		return smstest.Delivery{To: to, From: from, Text: text, Encoding: sms.GSM7, Segments: segments}
	}
	tests := []struct {
		name  string
		parts []smstest.Part
		want  []smstest.Delivery
	}{
		{"single SMS", []smstest.Part{part(nil, "hi")}, []smstest.Delivery{msg("hi", 1)}},
		{"parts out of order, interleaved with another message",
			[]smstest.Part{part(udh8(7, 2, 2), "world"), part(nil, "solo"), part(udh8(9, 2, 1), "x"), part(udh8(7, 2, 1), "hello "), part(udh8(9, 2, 2), "y")},
			[]smstest.Delivery{msg("hello world", 2), msg("solo", 1), msg("xy", 2)}},
		{"a message missing a part is left out", []smstest.Part{part(udh8(1, 3, 1), "a"), part(udh8(1, 3, 3), "c")}, nil},
		{"a duplicate send shows twice",
			[]smstest.Part{part(udh8(1, 2, 1), "a"), part(udh8(1, 2, 2), "b"), part(udh8(1, 2, 1), "a"), part(udh8(1, 2, 2), "b")},
			[]smstest.Delivery{msg("ab", 2), msg("ab", 2)}},
		{"16-bit reference, after another element",
			[]smstest.Part{part([]byte{0x24, 0x01, 0x00, 0x08, 0x04, 0x01, 0x02, 0x02, 0x02}, "2"), part([]byte{0x08, 0x04, 0x01, 0x02, 0x02, 0x01}, "1")},
			[]smstest.Delivery{msg("12", 2)}},
		{"a part numbered outside its total", []smstest.Part{part(udh8(1, 2, 3), "z")}, []smstest.Delivery{msg("z", 0)}},
		{"parts in different codings",
			[]smstest.Part{part(udh8(1, 2, 1), "a"), {To: to, From: from, Encoding: sms.UCS2, UDH: udh8(1, 2, 2), Text: "б"}},
			[]smstest.Delivery{{To: to, From: from, Text: "aб", Encoding: smstest.BadEncoding, Segments: 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := smstest.Reassemble(tt.parts); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Reassemble = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// echoServer answers every line with the same line.
func echoServer(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln
}

func roundTrip(c net.Conn, line string) (string, error) {
	if err := c.SetDeadline(time.Now().Add(500 * time.Millisecond)); err != nil {
		return "", err
	}
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	return got, err
}

func TestProxy(t *testing.T) {
	t.Parallel()
	t.Run("relays", func(t *testing.T) {
		t.Parallel()
		p := smstest.StartProxy(t, echoServer(t).Addr().String())
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got, err := roundTrip(c, "ping"); err != nil || got != "ping\n" {
			t.Fatalf("round trip = %q, %v", got, err)
		}
	})
	t.Run("stall holds the bytes, connection open", func(t *testing.T) {
		t.Parallel()
		p := smstest.StartProxy(t, echoServer(t).Addr().String())
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := roundTrip(c, "before"); err != nil {
			t.Fatal(err)
		}
		p.Stall()
		if got, err := roundTrip(c, "after"); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("round trip through a stalled proxy = %q, %v; want a read deadline", got, err)
		}
	})
	t.Run("close cuts connections and refuses new ones", func(t *testing.T) {
		t.Parallel()
		p := smstest.StartProxy(t, echoServer(t).Addr().String())
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := roundTrip(c, "before"); err != nil {
			t.Fatal(err)
		}
		p.Close()
		if got, err := roundTrip(c, "after"); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("round trip after Close = %q, %v; want the connection cut", got, err)
		}
		if c2, err := net.Dial("tcp", p.Addr()); err == nil {
			c2.Close()
			t.Fatal("the proxy still accepts connections after Close")
		}
	})
	t.Run("a peer that is down is a cut connection", func(t *testing.T) {
		t.Parallel()
		ln := echoServer(t)
		p := smstest.StartProxy(t, ln.Addr().String())
		_ = ln.Close()
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got, err := roundTrip(c, "hello"); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("round trip to a down peer = %q, %v; want the connection cut", got, err)
		}
	})
}
