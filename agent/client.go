// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/net/http/httpproxy"
)

// Client talks to keychest-lined's agent API.
type Client struct {
	base *url.URL
	http *http.Client
	// relayHTTP speaks HTTP/1.1 only: a relay is an upgrade.
	relayHTTP *http.Client
	// Key is the agent's API key, sent as a bearer token once registered.
	Key string
}

// StatusError is an answer of the server other than 2xx.
type StatusError struct {
	Code int
	Text string
}

func (e *StatusError) Error() string { return fmt.Sprintf("server answered %d: %s", e.Code, e.Text) }

// CheckServerURL accepts https:// URLs, and http:// only to a loopback
// address (127.0.0.0/8, ::1, localhost): an agent's key never crosses a
// network in the clear.
func CheckServerURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("--server %q: want https://host[:port]", raw)
	}
	switch u.Scheme {
	case "https":
		return u, nil
	case "http":
		if a, err := netip.ParseAddr(u.Hostname()); err == nil && a.IsLoopback() || u.Hostname() == "localhost" {
			return u, nil
		}
		return nil, fmt.Errorf("--server %q: plain http:// only to a loopback address; use https://", raw)
	}
	return nil, fmt.Errorf("--server %q: want https://host[:port]", raw)
}

// NewClient returns a client of server. caFile, when set, is a PEM file
// of the CAs to trust for the server instead of the system's. Proxies
// come from HTTPS_PROXY, HTTP_PROXY and NO_PROXY (read now), reached with
// CONNECT for https://.
func NewClient(server, caFile string) (*Client, error) {
	u, err := CheckServerURL(server)
	if err != nil {
		return nil, err
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca %s: no PEM certificate in it", caFile)
		}
		tlsConf.RootCAs = pool
	}
	proxy := httpproxy.FromEnvironment().ProxyFunc()
	tr := &http.Transport{
		Proxy:               func(r *http.Request) (*url.URL, error) { return proxy(r.URL) },
		DialContext:         (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsConf,
		TLSHandshakeTimeout: 15 * time.Second,
		ForceAttemptHTTP2:   true,
		IdleConnTimeout:     90 * time.Second,
	}
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	h1 := tr.Clone()
	h1.ForceAttemptHTTP2 = false
	h1.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	h1.TLSClientConfig.NextProtos = []string{"http/1.1"}
	h1.DisableKeepAlives = true
	return &Client{base: u, http: &http.Client{Transport: tr, Timeout: 60 * time.Second, CheckRedirect: noRedirect},
		relayHTTP: &http.Client{Transport: h1, CheckRedirect: noRedirect}}, nil
}

// maxAnswer bounds what the agent reads of an answer.
const maxAnswer = 1 << 20

// postJSON posts body (JSON, or raw bytes when it is []byte) to path and
// decodes the answer into out.
func (c *Client) postJSON(ctx context.Context, path string, body, out any) error {
	var raw []byte
	if b, ok := body.([]byte); ok {
		raw = b
	} else {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base.JoinPath(path).String(), bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.Key != "" {
		req.Header.Set("Authorization", "Bearer "+c.Key)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	ans, err := io.ReadAll(io.LimitReader(res.Body, maxAnswer))
	if err != nil {
		return err
	}
	if res.StatusCode/100 != 2 {
		return &StatusError{Code: res.StatusCode, Text: clean(string(ans), 200)}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(ans, out)
}

// clean cuts s to max bytes and replaces control characters, for a log.
func clean(s string, max int) string {
	if len(s) > max {
		s = s[:max]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.TrimSpace(s))
}
