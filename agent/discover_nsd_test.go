// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/internal/logcode"
	"github.com/keychest/keychest-lined/internal/nsdtest"
)

const nsdSecret = nsdtest.Secret

func testZone(extra string) string { return nsdtest.Zone(extra) }

func freeDNSPort(t *testing.T) int { return nsdtest.FreePort(t) }

func startNSD(t *testing.T, zone string) string { return nsdtest.Start(t, zone) }

// discoverServer is the agent API with a claimed agent, keeping posts.
type discoverServer struct {
	mu    sync.Mutex
	posts []DiscoveredPost
	left  int // not_added, as auto_add answers past the cap
}

func (d *discoverServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	switch r.URL.Path {
	case PathRegister:
		json.NewEncoder(w).Encode(Registered{ID: "a-1@agents.keychest.test", APIKey: "kc-agent-key-0123456789"})
	case PathHeartbeat:
		json.NewEncoder(w).Encode(Beat{ID: "a-1@agents.keychest.test", Claimed: true, Site: "office"})
	case PathDiscovered:
		var p DiscoveredPost
		json.Unmarshal(body, &p)
		d.posts = append(d.posts, p)
		json.NewEncoder(w).Encode(DiscoveredReply{Proposed: len(p.Candidates), NotAdded: d.left})
	case PathJobs:
		json.NewEncoder(w).Encode(JobsReply{})
	case PathLogs:
		json.NewEncoder(w).Encode(LogsReply{})
	default:
		http.NotFound(w, r)
	}
}

// discoverAgent opens an agent with allow.conf, discover.conf and the
// TSIG secret secret, against a fake service.
func discoverAgent(t *testing.T, discover, secret string) (*Agent, string, *discoverServer) {
	t.Helper()
	ds := &discoverServer{}
	srv := httptest.NewServer(ds)
	t.Cleanup(srv.Close)
	dir := filepath.Join(t.TempDir(), "keychest-agent")
	os.Mkdir(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "allow.conf"), []byte("allow 10.20.0.0/16 443,636 *.corp.example\nallow 10.20.0.0/16 8443\n"), 0o600)
	os.WriteFile(filepath.Join(dir, DiscoverFile), []byte(discover), 0o600)
	os.WriteFile(filepath.Join(dir, "tsig.secret"), []byte(secret+"\n"), 0o600)
	a, err := Open(Config{Dir: dir, Server: srv.URL, Version: "1.2.3", UID: os.Getuid(), For: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a, dir, ds
}

func TestDiscoverZoneFromNSD(t *testing.T) {
	addr := startNSD(t, testZone(""))
	a, dir, ds := discoverAgent(t, "zone corp.example server "+addr+" tsig agent-key:hmac-sha256:tsig.secret\n", nsdSecret)
	if err := a.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(ds.posts) != 1 || ds.posts[0].Source != "axfr:corp.example" {
		t.Fatalf("posts: %+v", ds.posts)
	}
	var got []string
	for _, c := range ds.posts[0].Candidates {
		got = append(got, fmt.Sprintf("%s:%d/%d", c.Name, c.Port, c.Addresses))
	}
	// n01-n10, mixed (one address of two) and ns on 443, ldap on 443 and
	// on the SRV's 636; not n11-n20 (outside), v6 (no rule), nor the wildcard.
	want := "ldap.corp.example:443/1 ldap.corp.example:636/1 mixed.corp.example:443/1 "
	for i := 1; i <= 10; i++ {
		want += fmt.Sprintf("n%02d.corp.example:443/1 ", i)
	}
	want += "ns.corp.example:443/1"
	if strings.Join(got, " ") != want {
		t.Errorf("candidates:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	seen, _ := entries(t, dir)
	if seen[logcode.AgentZoneTransferred] != 1 || seen[logcode.AgentDiscoverPosted] != 1 {
		t.Errorf("codes: %v", seen)
	}
	// A second once within --discover-every transfers nothing.
	if err := a.Once(context.Background()); err != nil || len(ds.posts) != 1 {
		t.Errorf("second once: %v, %d posts", err, len(ds.posts))
	}
}

func TestDiscoverWrongTSIGIsRefused(t *testing.T) {
	addr := startNSD(t, testZone(""))
	for _, c := range []struct{ name, line, secret string }{
		{"wrong secret", " tsig agent-key:hmac-sha256:tsig.secret", "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZy0wMTI="},
		{"unknown key", " tsig other-key:hmac-sha256:tsig.secret", nsdSecret},
		{"no key", "", nsdSecret},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, dir, ds := discoverAgent(t, "zone corp.example server "+addr+c.line+"\n", c.secret)
			if err := a.Once(context.Background()); err != nil {
				t.Fatal(err) // the agent carries on
			}
			if len(ds.posts) != 0 {
				t.Errorf("a refused transfer posted %+v", ds.posts)
			}
			seen, raw := entries(t, dir)
			if seen[logcode.AgentTransferRefused] != 1 || seen[logcode.AgentZoneTransferred] != 0 {
				t.Errorf("codes %v:\n%s", seen, raw)
			}
			if strings.Contains(raw, nsdSecret) || strings.Contains(raw, c.secret) {
				t.Error("the log carries the TSIG secret")
			}
		})
	}
}

func TestDiscoverUnreachableServerFails(t *testing.T) {
	a, dir, ds := discoverAgent(t, fmt.Sprintf("zone corp.example server 127.0.0.1:%d\n", freeDNSPort(t)), nsdSecret)
	if err := a.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	seen, _ := entries(t, dir)
	if len(ds.posts) != 0 || seen[logcode.AgentTransferFailed] != 1 {
		t.Errorf("posts %d, codes %v", len(ds.posts), seen)
	}
}

func TestOpenRefusesLooseOrBadDiscoverConf(t *testing.T) {
	for _, c := range []struct {
		text string
		mode os.FileMode
		code string
	}{
		{"zone corp.example server 127.0.0.1:53\n", 0o666, logcode.AgentInsecureFiles},
		{"zone corp.example\n", 0o600, logcode.AgentBadDiscover},
	} {
		dir := filepath.Join(t.TempDir(), "keychest-agent")
		os.Mkdir(dir, 0o700)
		p := filepath.Join(dir, DiscoverFile)
		os.WriteFile(p, []byte(c.text), 0o600)
		os.Chmod(p, c.mode)
		a, err := Open(Config{Dir: dir, Server: "http://127.0.0.1:1", UID: os.Getuid()})
		if err == nil {
			a.Close()
			t.Fatalf("%q mode %o: opened", c.text, c.mode)
		}
		if seen, _ := entries(t, dir); seen[c.code] != 1 {
			t.Errorf("%q: codes %v", c.text, seen)
		}
	}
}
