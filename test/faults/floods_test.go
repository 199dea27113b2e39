// SPDX-License-Identifier: Apache-2.0

//go:build faults

package faults

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/internal/logcode"
)

// record appends a figure for docs/reliability.md to .local/faults/figures.txt.
func record(t *testing.T, name, text string) {
	t.Logf("%s: %s", name, text)
	dir := filepath.Join(root, ".local/faults")
	os.MkdirAll(dir, 0o755)
	f, err := os.OpenFile(filepath.Join(dir, "figures.txt"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err == nil {
		fmt.Fprintf(f, "%s: %s\n", name, text)
		f.Close()
	}
}

// pings measures n pings on new connections, one after another; it
// returns the p99 and whether every one was answered "pong".
func pings(addr string, n int) (time.Duration, bool) {
	var lat []time.Duration
	ok := true
	for i := 0; i < n; i++ {
		began := time.Now()
		status, _, err := do(addr, "command ping", 5*time.Second)
		lat = append(lat, time.Since(began))
		ok = ok && err == nil && status == "status ok 200 pong"
	}
	slices.Sort(lat)
	return lat[len(lat)*99/100], ok
}

// Slowloris: 2,000 connections that send a byte now and then and 2,000
// that send nothing are closed by the idle and total deadlines; meanwhile
// normal clients are served quickly.
func TestSlowClients(t *testing.T) {
	s := start(t, newDB(t), "KEYCHEST_IDLE_TIMEOUT=2s", "KEYCHEST_MAX_LIFETIME=4s")
	var conns []net.Conn
	for i := 0; i < 4000; i++ {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the dribblers: a byte each second, never a whole line
		defer wg.Done()
		for tick := 0; ; tick++ {
			for _, c := range conns[:2000] {
				c.Write([]byte("c"))
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
			}
		}
	}()
	p99, ok := pings(s.addr, 500)
	close(stop)
	wg.Wait()
	// Every slow connection is closed by a deadline: reading it ends.
	closed := 0
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		for {
			if _, err := r.ReadString('\n'); err != nil {
				break
			}
		}
		closed++
	}
	record(t, "slowloris", fmt.Sprintf("2,000 dribbling + 2,000 silent connections: all %d closed by the idle (2s) and lifetime (4s) deadlines; 500 pings meanwhile, p99 %s, all answered: %v",
		closed, p99.Round(100*time.Microsecond), ok))
	if !ok || p99 > 50*time.Millisecond {
		t.Fatalf("pings during the slow clients: p99 %s, all ok %v", p99, ok)
	}
}

// A client that pipelines 100,000 commands and reads nothing: the server
// stops reading from it, its memory stays bounded, others are unaffected.
func TestPipelineWithoutReading(t *testing.T) {
	s := start(t, newDB(t))
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	payload := []byte(strings.Repeat("command ping\n", 100000))
	written := make(chan int, 1)
	go func() {
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		n, _ := c.Write(payload)
		written <- n
	}()
	n := <-written // the kernel's buffers take it all; the server reads what it can answer
	// The server stops reading once its replies back up: bytes stay queued
	// unread in its socket.
	var unread int
	for i := 0; i < 100 && unread == 0; i++ {
		time.Sleep(20 * time.Millisecond) // until the server has filled the client's window
		unread = serverRecvQueue(t, s.addr, c.LocalAddr().String())
	}
	rss := rssMB(t, s.cmd.Process.Pid)
	p99, ok := pings(s.addr, 200)
	record(t, "pipeline", fmt.Sprintf("100,000 pipelined pings (%d bytes), never read: the server stopped reading with %d bytes left unread in its socket; server RSS %.1f MB; 200 pings from another client meanwhile: p99 %s, all answered: %v",
		n, unread, rss, p99.Round(100*time.Microsecond), ok))
	if unread == 0 || rss > 64 || !ok || p99 > 50*time.Millisecond {
		t.Fatalf("unread %d bytes, RSS %.1f MB, pings ok %v p99 %s", unread, rss, ok, p99)
	}
}

// serverRecvQueue reads from /proc/net/tcp how many bytes wait unread in
// the server's socket of the connection from client to server.
func serverRecvQueue(t *testing.T, server, client string) int {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	hexAddr := func(a string) string {
		host, port, _ := net.SplitHostPort(a)
		ip := net.ParseIP(host).To4()
		p, _ := strconv.Atoi(port)
		return fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], p)
	}
	local, remote := hexAddr(server), hexAddr(client)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[1] == local && f[2] == remote {
			_, rx, _ := strings.Cut(f[4], ":")
			n, _ := strconv.ParseInt(rx, 16, 64)
			return int(n)
		}
	}
	return 0
}

func rssMB(t *testing.T, pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.Fields(v)[0])
			return float64(kb) / 1024
		}
	}
	return 0
}

// Key and claim floods from one address get 429; another address is not
// slowed.
func TestFloodsLimitedPerAddress(t *testing.T) {
	db := newDB(t)
	s := start(t, db, "KEYCHEST_LIMIT_KEYS_PER_IP_HOUR=50", "KEYCHEST_LIMIT_CLAIMS_PER_IP_HOUR=20")
	flood := func(line func(int) string, from string) map[string]int {
		codes := map[string]int{}
		for i := 0; i < 200; i++ {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
			c, err := d.Dial("tcp", s.addr)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte(line(i) + "\n"))
			r := bufio.NewReader(c)
			status, _ := r.ReadString('\n')
			for strings.HasPrefix(status, "data ") {
				status, _ = r.ReadString('\n')
			}
			c.Close()
			codes[strings.Fields(status + " x x x")[2]]++
		}
		return codes
	}
	keys := flood(func(int) string { return "command apikey" }, "127.0.0.9")
	claims := flood(func(i int) string {
		return fmt.Sprintf("command claim apikey flood-key-%08d-0123 email f%d@flood.example", i, i)
	}, "127.0.0.9")
	p99, ok := pings("127.0.0.1:"+strings.Split(s.addr, ":")[1], 100)
	_, _, err := do(s.addr, "command apikey", 5*time.Second)
	record(t, "floods", fmt.Sprintf("200 apikey and 200 claims from one address (limits 50 and 20 per hour): keys %v, claims %v; another address meanwhile: pings p99 %s",
		keys, claims, p99.Round(100*time.Microsecond)))
	if keys["200"] != 50 || keys["429"] != 150 || claims["200"] != 20 || claims["429"] != 180 || !ok || err != nil {
		t.Fatalf("keys %v claims %v pings ok %v", keys, claims, ok)
	}
}

// More connections than file descriptors: the extra ones are refused, it
// is logged, and the server serves again once they go.
func TestOutOfFileDescriptors(t *testing.T) {
	// Under a limit of 256 open files the server caps its connections below it.
	s := startLimited(t, newDB(t), 256)
	var conns []net.Conn
	refused := 0
	for i := 0; i < 400; i++ {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			refused++
			continue
		}
		conns = append(conns, c)
	}
	// Refused connections are told at once; admitted ones say nothing.
	var answered503 atomic.Int32
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(time.Second))
			buf := make([]byte, 200)
			n, _ := c.Read(buf)
			if strings.HasPrefix(string(buf[:n]), "status error 503") {
				answered503.Add(1)
			}
		}()
	}
	wg.Wait()
	for _, c := range conns {
		c.Close()
	}
	p99, ok := pings(s.addr, 50)
	logged, _ := os.ReadFile(s.log)
	record(t, "fds", fmt.Sprintf("400 connections to a server limited to 256 files: %d refused with 503, %d not connected; after they closed, 50 pings answered: %v (p99 %s)",
		answered503.Load(), refused, ok, p99.Round(100*time.Microsecond)))
	if answered503.Load() == 0 || !ok || !strings.Contains(string(logged), `"code":"`+logcode.ConnRefused+`"`) || !strings.Contains(string(logged), `"code":"`+logcode.ConnsLowered+`"`) {
		t.Fatalf("503s %d, pings ok %v, log:\n%.2000s", answered503.Load(), ok, logged)
	}
}

// startLimited starts the server under "ulimit -n files".
func startLimited(t *testing.T, db string, files int) *server {
	t.Helper()
	wrapper := filepath.Join(t.TempDir(), "limited")
	os.WriteFile(wrapper, []byte(fmt.Sprintf("#!/bin/sh\nulimit -n %d\nexec %s\n", files, binary)), 0o755)
	saved := binary
	binary = wrapper
	defer func() { binary = saved }()
	return start(t, db)
}
