// SPDX-License-Identifier: Apache-2.0

// Command tlsfarm serves TLS endpoints on loopback for trying and testing
// the monitor: certificates from its own CA with chosen lifetimes, and a
// DNS server that resolves their names. It never reaches beyond the
// machine.
//
//	tlsfarm -config farm.conf -dns 127.0.0.1:5300 -ca farm-ca.pem -state farm.state
//
// Each line of the config is "NAME ADDRESS:PORT LIFETIME LEFT", durations
// in days ("90d") or Go's units ("36h"): NAME resolves to ADDRESS, and
// ADDRESS:PORT serves a certificate for NAME of that lifetime with LEFT
// remaining. SIGHUP reloads the file (swapping certificates in place);
// after each load the state file says "generation N".
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/keychest/keychest-lined/internal/certtest"
)

func main() {
	config := flag.String("config", "farm.conf", "endpoints, one per line: NAME ADDRESS:PORT LIFETIME LEFT")
	dnsAddr := flag.String("dns", "127.0.0.1:5300", "UDP address of the DNS server")
	caFile := flag.String("ca", "farm-ca.pem", "where to write the CA's certificate (give it to KEYCHEST_MONITOR_CA_FILE)")
	stateFile := flag.String("state", "", "file that says \"generation N\" after each load")
	flag.Parse()
	ca, err := certtest.NewCA("KeyChest tlsfarm CA", time.Now())
	check(err)
	check(os.WriteFile(*caFile, ca.PEM, 0o644))
	dns, err := certtest.ServeDNS(*dnsAddr)
	check(err)
	f := &farm{ca: ca, dns: dns, servers: map[string]*certtest.Server{}}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	for gen := 1; ; gen++ {
		check(f.load(*config))
		if *stateFile != "" {
			check(os.WriteFile(*stateFile, []byte(fmt.Sprintf("generation %d\n", gen)), 0o644))
		}
		log.Printf("tlsfarm: generation %d, DNS on %s", gen, dns.Addr())
		select {
		case <-hup:
		case <-stop:
			return
		}
	}
}

// farm is the running endpoints, by address.
type farm struct {
	ca      *certtest.CA
	dns     *certtest.DNS
	servers map[string]*certtest.Server
}

// load reads the config and brings the endpoints in line with it.
func (f *farm) load(path string) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if len(fields) != 4 {
			return fmt.Errorf("%s:%d: want NAME ADDRESS:PORT LIFETIME LEFT", path, n)
		}
		if err := f.endpoint(fields[0], fields[1], fields[2], fields[3]); err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
	}
	return sc.Err()
}

// endpoint serves (or swaps) one certificate.
func (f *farm) endpoint(name, addr, lifetime, left string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return err
	}
	life, err := days(lifetime)
	if err != nil {
		return err
	}
	rest, err := days(left)
	if err != nil {
		return err
	}
	cert, err := f.ca.Issue(certtest.Lifetime(time.Now(), life, rest, name))
	if err != nil {
		return err
	}
	f.dns.Set(name, ap.Addr())
	if s, ok := f.servers[addr]; ok {
		s.Swap(cert)
		return nil
	}
	s, err := certtest.Serve(net.JoinHostPort(ap.Addr().String(), strconv.Itoa(int(ap.Port()))), cert)
	if err != nil {
		return err
	}
	f.servers[addr] = s
	return nil
}

// days reads "90d", "60d12h" or a Go duration.
func days(s string) (time.Duration, error) {
	d, rest, ok := strings.Cut(s, "d")
	if !ok {
		return time.ParseDuration(s)
	}
	n, err := strconv.Atoi(d)
	if err != nil {
		return 0, fmt.Errorf("%q: want days like 90d or 60d12h", s)
	}
	extra := time.Duration(0)
	if rest != "" {
		if extra, err = time.ParseDuration(rest); err != nil {
			return 0, err
		}
	}
	return time.Duration(n)*24*time.Hour + extra, nil
}

func check(err error) {
	if err != nil {
		log.Fatal("tlsfarm: ", err)
	}
}
