// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// The hostile mix of issue 12, run against the server while the measured
// (honest) clients run: slowloris connections trickling a byte at a time,
// floods of junk bytes, of NUL bytes, and of 65 KB lines. None of them
// reads what the server says. Sources are 127.1.x.y, apart from the honest
// clients' 127.0.x.y.
func startAttacks(o options) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	spawn := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	spawn(func(ctx context.Context) { slowloris(ctx, o) })
	junk := make([]byte, 16<<10)
	for i := range junk {
		junk[i] = byte(rand.IntN(256))
	}
	long := append(bytes.Repeat([]byte("a"), 65<<10), '\n')
	for i := 0; i < o.floods; i++ {
		for j, payload := range [][]byte{junk, make([]byte, 16<<10), long} {
			n := 3*i + j
			spawn(func(ctx context.Context) { flood(ctx, o, attackSource(n), payload) })
		}
	}
	time.Sleep(time.Second) // the slowloris connections open
	return func() { cancel(); wg.Wait() }
}

// attackSource spreads attack connections over 127.1.0.0/16.
func attackSource(i int) *net.TCPAddr {
	return &net.TCPAddr{IP: net.IPv4(127, 1, byte(i/250), byte(1+i%250))}
}

// slowloris holds o.slowloris connections open and sends each one byte per
// o.trickle, opening a new connection for any the server closed.
func slowloris(ctx context.Context, o options) {
	conns := make([]net.Conn, o.slowloris)
	tick := time.NewTicker(o.trickle)
	defer tick.Stop()
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	for {
		for i, c := range conns {
			if c == nil {
				d := net.Dialer{LocalAddr: attackSource(1000 + i), Timeout: time.Second}
				if c, _ = d.DialContext(ctx, "tcp", o.addr); c == nil {
					continue
				}
				conns[i] = c
			}
			c.SetWriteDeadline(time.Now().Add(time.Millisecond))
			if _, err := c.Write([]byte{'x'}); err != nil {
				c.Close()
				conns[i] = nil
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// flood sends payload over and over on one connection, and on a new one
// whenever the server closes it.
func flood(ctx context.Context, o options, local *net.TCPAddr, payload []byte) {
	for ctx.Err() == nil {
		d := net.Dialer{LocalAddr: local, Timeout: time.Second}
		c, err := d.DialContext(ctx, "tcp", o.addr)
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		stop := context.AfterFunc(ctx, func() { c.Close() })
		for ctx.Err() == nil {
			c.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := c.Write(payload); err != nil {
				break
			}
		}
		stop()
		c.Close()
	}
}

// pipelineRSS opens n connections that each send 65,000 bytes of
// "command help" lines and read nothing, and samples the server's RSS
// until every connection has sent its lines and the RSS has not grown for
// 2 s (at most 30 s). It returns the peak in MB.
func pipelineRSS(o options, n int) float64 {
	lines := bytes.Repeat([]byte("command help\n"), 65000/len("command help\n"))
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		d := net.Dialer{LocalAddr: source(o, i), Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", o.addr)
		if err != nil {
			continue
		}
		conns = append(conns, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			c.Write(lines)
		}()
	}
	written := make(chan struct{})
	go func() { wg.Wait(); close(written) }()
	peak, grew := 0, time.Now()
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if rss := readProc(o.pid).rssKB; rss > peak {
			peak, grew = rss, time.Now()
		}
		select {
		case <-written:
			if time.Since(grew) > 2*time.Second {
				return float64(peak) / 1024
			}
		default:
		}
	}
	return float64(peak) / 1024
}
