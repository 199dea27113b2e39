// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// client is one simulated host: a random stream and its share of the load.
type client struct {
	o      options
	rnd    *rand.Rand
	keys   []string
	seq    *atomic.Int64
	picker []string // the mix, one entry per weight unit
}

// run creates keys for add, opens the idle connections, runs the load,
// and measures.
func run(o options, mix map[string]int) (*report, error) {
	keys, err := setupKeys(o, mix)
	if err != nil {
		return nil, err
	}
	idle, err := holdIdle(o)
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	if err != nil {
		return nil, err
	}
	var picker []string
	for name, w := range mix {
		for i := 0; i < w; i++ {
			picker = append(picker, name)
		}
	}
	if o.hostile {
		defer startAttacks(o)()
	}
	before, ownBefore := readProc(o.pid), ownCPU()
	rec := newRecorder()
	var seq atomic.Int64
	var sent atomic.Int64
	deadline := time.Now().Add(o.duration)
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < o.conc; i++ {
		c := &client{o: o, rnd: rand.New(rand.NewPCG(uint64(i), uint64(start.UnixNano()))),
			keys: keys, seq: &seq, picker: picker}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if o.count > 0 && sent.Add(1) > int64(o.count) {
					return
				}
				if o.count == 0 && time.Now().After(deadline) {
					return
				}
				verb := c.picker[c.rnd.IntN(len(c.picker))]
				took, kind := c.once(verb)
				rec.add(verb, took, kind)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	return rec.report(o, elapsed, before, readProc(o.pid), ownCPU()-ownBefore, len(idle)), nil
}

// dials counts the connections made, to spread them over the sources.
var dials atomic.Uint64

// source picks the local address for connection i: 127.0.0.2 and up, so
// that the ephemeral ports of one address do not run out. Each closed
// connection holds its port in TIME_WAIT for a minute: with one address
// per client, a single client (C=1) ran its address out within seconds,
// and every later dial from it waited (docs/performance.md has the
// figures). So it is per connection, round robin.
func source(o options, i int) *net.TCPAddr {
	if o.sources <= 0 || !strings.HasPrefix(o.addr, "127.") {
		return nil
	}
	return &net.TCPAddr{IP: net.IPv4(127, 0, byte(i%o.sources/250), byte(2+i%o.sources%250))}
}

// line returns the command line for verb.
func (c *client) line(verb string) string {
	n := c.seq.Add(1)
	switch verb {
	case "apikey":
		return "command apikey"
	case "add":
		return fmt.Sprintf("command add domain h%d-%d.bench.example apikey %s", n, c.rnd.Uint32(), c.keys[int(n)%len(c.keys)])
	case "claim":
		return fmt.Sprintf("command claim apikey bench-%016x-%d email b%d-%d@bench.example", c.rnd.Uint64(), n, n, c.rnd.Uint32())
	}
	return "command ping"
}

// once sends one command on a new connection and reads its reply. It
// returns the time from dial to reply, and "" or the kind of failure.
func (c *client) once(verb string) (time.Duration, string) {
	line := c.line(verb)
	if c.o.newline {
		line += "\n"
	}
	if c.o.redis {
		line = "PING\r\n"
	}
	start := time.Now()
	d := net.Dialer{LocalAddr: source(c.o, int(dials.Add(1))), Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", c.o.addr)
	if err != nil {
		return time.Since(start), dialErrorKind(err)
	}
	defer conn.Close()
	conn.SetDeadline(start.Add(10 * time.Second))
	if _, err := conn.Write([]byte(line)); err != nil {
		return time.Since(start), "write"
	}
	status, err := readStatus(conn, c.o.redis)
	took := time.Since(start)
	switch {
	case err != nil:
		return took, "read: " + errorKind(err)
	case !strings.HasPrefix(status, "status ok"):
		code, _, _ := strings.Cut(strings.TrimPrefix(status, "status error "), " ")
		return took, "status " + code
	}
	return took, ""
}

// readStatus reads until the status line of one reply (for Redis, its
// +PONG line, reported as "status ok").
func readStatus(conn net.Conn, redis bool) (string, error) {
	var buf [1024]byte
	got := 0
	for {
		n, err := conn.Read(buf[got:])
		got += n
		if redis && strings.Contains(string(buf[:got]), "\n") {
			if strings.HasPrefix(string(buf[:got]), "+PONG") {
				return "status ok", nil
			}
			return "status error redis", nil
		}
		if i := strings.Index(string(buf[:got]), "status "); i >= 0 && strings.Contains(string(buf[i:got]), "\n") {
			return string(buf[i:got]), nil
		}
		if err != nil {
			return "", err
		}
		if got == len(buf) {
			return "", errors.New("reply too long")
		}
	}
}

func dialErrorKind(err error) string {
	if errors.Is(err, syscall.EADDRNOTAVAIL) {
		return "dial: ports exhausted (EADDRNOTAVAIL)"
	}
	return "dial: " + errorKind(err)
}

func errorKind(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	}
	return err.Error()
}

// setupKeys creates the keys that add uses, over one connection.
func setupKeys(o options, mix map[string]int) ([]string, error) {
	if mix["add"] == 0 {
		return nil, nil
	}
	conn, err := net.Dial("tcp", o.addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	var keys []string
	for len(keys) < o.keys {
		if _, err := conn.Write([]byte("command apikey\n")); err != nil {
			return nil, err
		}
		var buf [1024]byte
		n, err := conn.Read(buf[:])
		if err != nil {
			return nil, err
		}
		data, _, _ := strings.Cut(string(buf[:n]), "\n")
		key, ok := strings.CutPrefix(data, "data ")
		if !ok {
			return nil, fmt.Errorf("creating keys: %q", buf[:n])
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// holdIdle opens n connections that send nothing.
func holdIdle(o options) ([]net.Conn, error) {
	var conns []net.Conn
	for i := 0; i < o.idle; i++ {
		d := net.Dialer{LocalAddr: source(o, i+o.conc)}
		c, err := d.Dial("tcp", o.addr)
		if err != nil {
			return conns, fmt.Errorf("idle connection %d: %w", i, err)
		}
		conns = append(conns, c)
	}
	return conns, nil
}
