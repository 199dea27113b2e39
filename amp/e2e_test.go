// SPDX-License-Identifier: Apache-2.0

package amp

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/acme"
)

var update = flag.Bool("update", false, "record the exchanges with Pebble into testdata/pebble.json")

// testProxy is the proxy run in-process for a test, with what it saw.
type testProxy struct {
	Addr  string
	Roots *x509.CertPool // the proxy's root
	CA    *CA

	mu        sync.Mutex
	exchanges []Exchange
	events    []Event
}

func startProxy(t testing.TB, hosts HostList, upstream *x509.CertPool) *testProxy {
	t.Helper()
	return startProxyWith(t, ProxyConfig{ACME: hosts, Upstream: upstream})
}

// startProxyWith starts a proxy with cfg, serving loopback clients, with
// a root for cfg.ACME, logging nowhere and recording the exchanges.
func startProxyWith(t testing.TB, cfg ProxyConfig) *testProxy {
	t.Helper()
	ca, _, err := LoadCA(t.TempDir(), cfg.ACME.Scope(netip.Addr{}))
	if err != nil {
		t.Fatal(err)
	}
	tp := &testProxy{CA: ca, Roots: x509.NewCertPool()}
	tp.Roots.AddCert(ca.Root())
	tracker := NewTracker(1000)
	cfg.Allow, cfg.Log = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, zerolog.Nop()
	cfg.Observe = func(x Exchange) {
		tp.mu.Lock()
		defer tp.mu.Unlock()
		tp.exchanges = append(tp.exchanges, x)
		tp.events = append(tp.events, tracker.Observe(x)...)
	}
	p := NewProxy(cfg, ca)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tp.Addr = ln.Addr().String()
	go p.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Shutdown(ctx)
	})
	return tp
}

// client is an HTTP client that goes through the proxy, trusting its root.
func (tp *testProxy) client(scheme string) *http.Client {
	u, _ := url.Parse(scheme + "://" + tp.Addr)
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(u),
		TLSClientConfig: tlsConfigFor(tp.Roots)}}
}

// http01 serves HTTP-01 answers on loopback for Pebble's validation.
type http01 struct {
	mu      sync.Mutex
	answers map[string]string
	port    int
}

func startHTTP01(t testing.TB) *http01 {
	h := &http01{answers: map[string]string{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.port = ln.Addr().(*net.TCPAddr).Port
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		a, ok := h.answers[r.URL.Path]
		h.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, a)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return h
}

// issue runs one ACME client through the proxy: account, an order for
// 127.0.0.1 validated over HTTP-01, finalize, revoke, key change, and an
// order for a name Pebble cannot validate.
func issue(t *testing.T, ctx context.Context, c *acme.Client, h *http01) {
	acct, err := c.Register(ctx, &acme.Account{Contact: []string{"mailto:ops@example.org"}}, acme.AcceptTOS)
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	if acct.Status != acme.StatusValid {
		t.Fatalf("account: %+v", acct)
	}
	order, err := c.AuthorizeOrder(ctx, acme.IPIDs("127.0.0.1"))
	if err != nil {
		t.Fatalf("order: %v", err)
	}
	for _, u := range order.AuthzURLs {
		if err := answer(ctx, c, h, u); err != nil {
			t.Fatalf("authorization: %v", err)
		}
	}
	if _, err = c.WaitOrder(ctx, order.URI); err != nil {
		t.Fatalf("wait order: %v", err)
	}
	certKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}, certKey)
	der, _, err := c.CreateCertFromOrder(ctx, order, csr, true)
	if err != nil {
		t.Fatalf("finalize: %v", err)
	}
	if err := c.RevokeCert(ctx, nil, der[0], acme.CRLReasonUnspecified); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	newKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err := c.AccountKeyRollover(ctx, newKey); err != nil {
		t.Fatalf("key change: %v", err)
	}
	bad, err := c.AuthorizeOrder(ctx, acme.DomainIDs("fail.example"))
	if err != nil {
		t.Fatalf("order: %v", err)
	}
	if err := answer(ctx, c, h, bad.AuthzURLs[0]); err == nil {
		t.Fatal("fail.example validated")
	}
}

// answer accepts the HTTP-01 challenge of an authorization and waits for it.
func answer(ctx context.Context, c *acme.Client, h *http01, authzURL string) error {
	z, err := c.GetAuthorization(ctx, authzURL)
	if err != nil {
		return err
	}
	for _, ch := range z.Challenges {
		if ch.Type != "http-01" {
			continue
		}
		resp, _ := c.HTTP01ChallengeResponse(ch.Token)
		h.mu.Lock()
		h.answers[c.HTTP01ChallengePath(ch.Token)] = resp
		h.mu.Unlock()
		if _, err := c.Accept(ctx, ch); err != nil {
			return err
		}
		_, err = c.WaitAuthorization(ctx, authzURL)
		return err
	}
	return fmt.Errorf("no http-01 challenge")
}

// seedFields are the params the seed defines for each message type.
var seedFields = map[string][]string{
	"directory":   {},
	"new-nonce":   {},
	"new-acct":    {"contact", "email", "account", "source", "status"},
	"new-order":   {"domains", "authz", "finalize", "account", "order"},
	"auth":        {"account", "authz", "status", "expires", "identifier"},
	"chall":       {"account", "chall", "status"},
	"order":       {"account", "chall", "status", "identifiers", "finalize", "certificate"},
	"final":       {"account", "status", "certificate"},
	"revoke-cert": {"account"},
	"key-change":  {"account"},
}

func TestACMEClientThroughProxyToPebble(t *testing.T) {
	h := startHTTP01(t)
	peb := startPebble(t, h.port)
	hosts, _ := ParseHostList([]string{fmt.Sprintf("localhost:%d", peb.Port)})
	tp := startProxy(t, hosts, peb.Roots)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, scheme := range []string{"http", "https"} {
		t.Run(scheme+" proxy URL", func(t *testing.T) {
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			c := &acme.Client{Key: crypto.Signer(key), DirectoryURL: fmt.Sprintf("https://localhost:%d/dir", peb.Port),
				HTTPClient: tp.client(scheme), UserAgent: "amp-test"}
			issue(t, ctx, c, h)
		})
	}
	tp.mu.Lock()
	defer tp.mu.Unlock()
	seen := map[string]bool{}
	for _, ev := range tp.events {
		seen[ev.Msg] = true
		checkSeedFields(t, ev)
	}
	for msg := range seedFields {
		if !seen[msg] {
			t.Errorf("no %s message", msg)
		}
	}
	checkFailure(t, tp.events)
	if *update {
		recordExchanges(t, tp.exchanges)
	}
}

// checkSeedFields fails unless an event has the common params and its
// type's, filled.
func checkSeedFields(t *testing.T, ev Event) {
	t.Helper()
	for _, k := range append([]string{"epoch", "client", "server", "agent", "code"}, seedFields[ev.Msg]...) {
		v, ok := pm(ev)[k]
		empty := !ok || v == "" || v == nil
		if k == "certificate" || k == "source" { // empty until issued; Pebble does not report initialIp
			empty = !ok
		}
		if empty {
			t.Errorf("%s: param %s missing or empty: %v", ev.Msg, k, ev.Params)
		}
	}
	if pm(ev)["agent"] != nil && !strings.Contains(pm(ev)["agent"].(string), "amp-test") {
		t.Errorf("%s: agent %v", ev.Msg, pm(ev)["agent"])
	}
}

// checkFailure finds the failed validation of fail.example as auth and
// chall messages with status invalid and the CA's detail.
func checkFailure(t *testing.T, events []Event) {
	t.Helper()
	var auth, chall bool
	for _, ev := range events {
		if pm(ev)["status"] != "invalid" {
			continue
		}
		e, _ := pm(ev)["error"].(map[string]any)
		if e == nil || !strings.HasPrefix(e["type"].(string), "urn:ietf:params:acme:error:") || e["detail"] == "" {
			t.Errorf("%s invalid without the CA's error: %v", ev.Msg, ev.Params)
		}
		switch ev.Msg {
		case "auth":
			auth = auth || pm(ev)["identifier"].(map[string]any)["value"] == "fail.example"
		case "chall":
			chall = true
		}
	}
	if !auth || !chall {
		t.Errorf("failed validation: auth invalid %v, chall invalid %v", auth, chall)
	}
}

// recorded is an exchange as stored in testdata, its bodies as text.
type recorded struct {
	Method, URL, Server string
	RequestBody         string
	Status              int
	Header              http.Header
	Body                string
}

func recordExchanges(t *testing.T, xs []Exchange) {
	var out []recorded
	for _, x := range xs {
		out = append(out, recorded{Method: x.Method, URL: x.URL, Server: x.Server, RequestBody: string(x.RequestBody),
			Status: x.Status, Header: slimHeader(x.Header), Body: string(x.Body)})
	}
	raw, _ := json.MarshalIndent(out, "", "  ")
	if err := os.WriteFile(filepath.Join("testdata", "pebble.json"), append(raw, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// slimHeader keeps the headers the tracker reads.
func slimHeader(h http.Header) http.Header {
	out := http.Header{}
	for _, k := range []string{"Content-Type", "Location", "Link"} {
		if v := h.Values(k); len(v) > 0 {
			out[k] = slices.Clone(v)
		}
	}
	return out
}
