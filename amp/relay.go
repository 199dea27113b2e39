// SPDX-License-Identifier: Apache-2.0

package amp

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/keychest/keychest-lined/internal/logcode"
)

// Size limits of what the relay reads whole to log it.
const (
	maxRequestBody  = 1 << 20
	maxResponseBody = 4 << 20
)

// relay serves the requests of intercepted connections: it forwards each
// to the ACME server, verified, with only hop-by-hop headers changed, and
// hands the pair to Observe.
type relay struct {
	cfg       ProxyConfig
	transport *http.Transport
	proxy     *httputil.ReverseProxy
}

func newRelay(cfg ProxyConfig) *relay {
	r := &relay{cfg: cfg}
	r.transport = &http.Transport{
		Proxy:                 nil, // never the environment's proxy
		DialContext:           relayDial(cfg.Resolver),
		TLSClientConfig:       &tls.Config{RootCAs: cfg.Upstream},
		DisableCompression:    true, // bodies pass as they are
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   dialTimeout,
		ResponseHeaderTimeout: time.Minute,
	}
	r.proxy = &httputil.ReverseProxy{
		Rewrite:      func(*httputil.ProxyRequest) {}, // the URL is set by ServeHTTP
		Transport:    r.transport,
		ErrorHandler: r.upstreamFailed,
		ModifyResponse: func(resp *http.Response) error {
			return r.observe(resp)
		},
	}
	return r
}

// pending is what ServeHTTP leaves for ModifyResponse in the context.
type pendingKey struct{}

type pending struct {
	info  connInfo
	start time.Time
	body  []byte
}

func (r *relay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	info := req.Context().Value(connInfoKey{}).(connInfo)
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxRequestBody))
	if err != nil {
		problem(w, http.StatusRequestEntityTooLarge, "malformed", "keychest-amp: request body over 1 MiB")
		return
	}
	if req.Method == http.MethodPost {
		if _, err := DecodeJWS(body); err != nil {
			r.cfg.Log.Warn().Str("code", logcode.AMPNotJWS).Time("event_time", time.Now()).Str("remote", info.client.String()).
				Str("url", req.URL.Path).Err(err).Msg("malformed JWS refused")
			problem(w, http.StatusBadRequest, "malformed", "keychest-amp: the request body is not a JWS in flattened JSON form: "+err.Error())
			return
		}
	}
	out := req.Clone(req.Context())
	out.URL = &url.URL{Scheme: "https", Host: info.target, Path: req.URL.Path, RawPath: req.URL.RawPath, RawQuery: req.URL.RawQuery}
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	if len(body) == 0 && req.ContentLength <= 0 {
		out.Body = http.NoBody
	}
	out = out.WithContext(context.WithValue(req.Context(), pendingKey{}, &pending{info: info, start: time.Now(), body: body}))
	r.proxy.ServeHTTP(w, out)
}

// observe reads the response body whole, puts it back for the client, and
// reports the exchange.
func (r *relay) observe(resp *http.Response) error {
	p, _ := resp.Request.Context().Value(pendingKey{}).(*pending)
	if p == nil || r.cfg.Observe == nil {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody+1))
	resp.Body.Close()
	if err != nil {
		return err
	}
	if len(body) > maxResponseBody {
		return fmt.Errorf("response body over %d bytes", maxResponseBody)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	r.cfg.Observe(Exchange{
		Time: p.start, Client: p.info.client.String(), Server: p.info.target,
		Method: resp.Request.Method, URL: resp.Request.URL.String(), Agent: resp.Request.UserAgent(),
		RequestBody: p.body, Status: resp.StatusCode, Header: resp.Header, Body: plainBody(resp.Header, body),
	})
	return nil
}

// plainBody returns the body uncompressed for reading (the client still
// gets it as the server sent it).
func plainBody(h http.Header, body []byte) []byte {
	if h.Get("Content-Encoding") != "gzip" {
		return body
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil
	}
	plain, _ := io.ReadAll(io.LimitReader(zr, maxResponseBody))
	return plain
}

func (r *relay) upstreamFailed(w http.ResponseWriter, req *http.Request, err error) {
	r.cfg.Log.Warn().Str("code", logcode.AMPUpstreamFailed).Time("event_time", time.Now()).Str("url", req.URL.String()).Err(err).Msg("ACME server unreachable or failed")
	problem(w, http.StatusBadGateway, "serverInternal", "keychest-amp: the ACME server "+req.URL.Host+" failed: "+err.Error())
}

// problem answers with an ACME problem document of the proxy's own.
func problem(w http.ResponseWriter, code int, kind, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"type": "urn:ietf:params:acme:error:" + kind, "detail": detail, "status": code})
}
