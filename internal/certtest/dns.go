// SPDX-License-Identifier: Apache-2.0

package certtest

import (
	"net"
	"net/netip"
	"strings"
	"sync"

	"golang.org/x/net/dns/dnsmessage"
)

// DNS is an authoritative-looking DNS server on loopback (UDP) that
// answers A and AAAA from a table and NXDOMAIN for any other name.
type DNS struct {
	conn    *net.UDPConn
	mu      sync.Mutex
	records map[string][]netip.Addr
}

// ServeDNS listens on addr ("127.0.0.1:0", say).
func ServeDNS(addr string) (*DNS, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, err
	}
	d := &DNS{conn: conn, records: map[string][]netip.Addr{}}
	go d.serve()
	return d, nil
}

// Addr is the server's "host:port".
func (d *DNS) Addr() string { return d.conn.LocalAddr().String() }

// Set makes name resolve to addrs (none: NXDOMAIN).
func (d *DNS) Set(name string, addrs ...netip.Addr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	key := strings.ToLower(strings.TrimSuffix(name, "."))
	if len(addrs) == 0 {
		delete(d.records, key)
		return
	}
	d.records[key] = addrs
}

// Close stops the server.
func (d *DNS) Close() { d.conn.Close() }

func (d *DNS) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := d.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if reply, ok := d.answer(buf[:n]); ok {
			d.conn.WriteToUDP(reply, from)
		}
	}
}

// answer builds the reply to one query.
func (d *DNS) answer(query []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return nil, false
	}
	d.mu.Lock()
	addrs, found := d.records[strings.ToLower(strings.TrimSuffix(q.Name.String(), "."))]
	d.mu.Unlock()
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionAvailable: true}
	if !found {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	b.StartQuestions()
	b.Question(q)
	b.StartAnswers()
	res := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 1}
	for _, a := range addrs {
		switch {
		case q.Type == dnsmessage.TypeA && a.Is4():
			b.AResource(res, dnsmessage.AResource{A: a.As4()})
		case q.Type == dnsmessage.TypeAAAA && a.Is6():
			b.AAAAResource(res, dnsmessage.AAAAResource{AAAA: a.As16()})
		}
	}
	out, err := b.Finish()
	return out, err == nil
}
