// SPDX-License-Identifier: Apache-2.0

package web

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/keychest/keychest-lined/agent"
	"github.com/keychest/keychest-lined/store"
)

// Bounds of what an agent posts.
const (
	maxSummaryBody = 256 << 10
	maxLogsBody    = 1 << 20
	maxLogEntries  = 5000
	maxListItems   = 1000 // allow rules, addresses, discovery sources
	maxItemLen     = 300
	maxSiteCAs     = 20
	maxCALen       = 16 << 10
)

// readSummary reads and bounds a pushed summary; raw is what is stored:
// the summary re-encoded, so only its known fields, cleaned, are kept.
func readSummary(w http.ResponseWriter, r *http.Request) (agent.Summary, []byte, error) {
	var s agent.Summary
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSummaryBody))
	if err := dec.Decode(&s); err != nil {
		return s, nil, fmt.Errorf("the summary is not JSON or is over %d bytes: %v", maxSummaryBody, err)
	}
	s.Host = cleanText(strings.ToLower(s.Host), 253)
	s.Version, s.OS, s.Arch = cleanText(s.Version, 64), cleanText(s.OS, 32), cleanText(s.Arch, 32)
	s.Site = cleanText(s.Site, 63)
	if len(s.Addresses) > maxListItems || len(s.Allow) > maxListItems || len(s.Discovery) > maxListItems || len(s.SiteCAs) > maxSiteCAs {
		return s, nil, fmt.Errorf("the summary lists more than %d items (or %d CAs)", maxListItems, maxSiteCAs)
	}
	for _, list := range [][]string{s.Addresses, s.Allow, s.Discovery} {
		for i := range list {
			list[i] = cleanText(list[i], maxItemLen)
		}
	}
	for _, ca := range s.SiteCAs {
		if len(ca) > maxCALen || !strings.HasPrefix(ca, "-----BEGIN CERTIFICATE-----") {
			return s, nil, fmt.Errorf("site_cas: each must be one PEM certificate of at most %d bytes", maxCALen)
		}
	}
	raw, err := json.Marshal(s)
	return s, raw, err
}

// cleanText cuts s to max bytes (on a rune boundary) and replaces control
// characters: text from an agent goes to pages and mails.
func cleanText(s string, max int) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) > max {
		cut := max
		for cut > 0 && s[cut]&0xC0 == 0x80 {
			cut--
		}
		s = s[:cut]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}

var siteName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// siteOf is the site an agent serves: the one it names, else its host
// name (lower case, up to the first dot), else "default".
func siteOf(s agent.Summary) string {
	if site := strings.ToLower(s.Site); siteName.MatchString(site) {
		return site
	}
	if label, _, _ := strings.Cut(strings.ToLower(s.Host), "."); siteName.MatchString(label) {
		return label
	}
	return "default"
}

// idAlphabet spells the random part of an agent's id.
const idAlphabet = "abcdefghijkmnpqrstuvwxyz23456789"

var hostName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$`)

// newAgentID returns a fresh id in the form of an e-mail address:
// agent-<12 random characters>@agents.<the server's host name>.
func newAgentID(host string) string {
	var raw [12]byte
	if _, err := rand.Read(raw[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	for i := range raw {
		raw[i] = idAlphabet[raw[i]&31]
	}
	if h, _, err := splitHost(host); err == nil {
		host = h
	}
	host = strings.ToLower(host)
	if _, err := netip.ParseAddr(host); err == nil || !hostName.MatchString(host) || len(host) > 200 {
		host = "keychest.invalid"
	}
	return "agent-" + string(raw[:]) + "@agents." + host
}

// splitHost strips a port from a Host header.
func splitHost(h string) (string, string, error) {
	if i := strings.LastIndexByte(h, ':'); i > 0 && !strings.Contains(h[i:], "]") {
		return strings.Trim(h[:i], "[]"), h[i+1:], nil
	}
	return strings.Trim(h, "[]"), "", nil
}

// readLogs reads a batch of JSON-line log entries; lines that are not a
// JSON object with a code are skipped. Past maxLogEntries or maxLogsBody,
// the whole batch is refused.
func readLogs(w http.ResponseWriter, r *http.Request) ([]store.AgentLog, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxLogsBody))
	if err != nil {
		return nil, fmt.Errorf("a batch of logs is at most %d bytes", maxLogsBody)
	}
	var out []store.AgentLog
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, maxLogsBody)
	for sc.Scan() {
		if len(out) == maxLogEntries {
			return nil, fmt.Errorf("a batch of logs is at most %d entries", maxLogEntries)
		}
		var e struct {
			Code      string `json:"code"`
			Level     string `json:"level"`
			EventTime string `json:"event_time"`
		}
		line := sc.Bytes()
		if json.Unmarshal(line, &e) != nil || !logCode.MatchString(e.Code) || bytes.Contains(line, []byte(`\u0000`)) {
			continue
		}
		l := store.AgentLog{Code: e.Code, Level: cleanText(e.Level, 16), Entry: append([]byte(nil), line...)}
		l.EventTime, _ = time.Parse(time.RFC3339Nano, e.EventTime)
		out = append(out, l)
	}
	return out, nil
}

var logCode = regexp.MustCompile(`^[A-Z]{3,4}[0-9]{4}$`)

// retryAfter is a Retry-After value: whole seconds, at least 1.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}
