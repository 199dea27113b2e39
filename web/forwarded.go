// SPDX-License-Identifier: Apache-2.0

package web

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/keychest/keychest-lined/internal/clientnet"
)

// clientAddr is the address of the client behind a request: the peer's,
// unless the peer is a trusted proxy; then X-Forwarded-For is read from
// the right, past every trusted proxy, and the first other address is the
// client's. A client can put anything at the left of the header, so
// nothing left of that address is believed.
func clientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := peerAddr(r)
	if !clientnet.Within(peer, trusted) {
		return peer
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		ip, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return peer // a malformed hop: believe nothing to its left
		}
		ip = ip.Unmap()
		if !clientnet.Within(ip, trusted) {
			return ip
		}
		peer = ip
	}
	return peer
}

// peerAddr is the address of the connection's other end.
func peerAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	ip, _ := netip.ParseAddr(host)
	return ip.Unmap()
}
