// SPDX-License-Identifier: Apache-2.0

package amp

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pebble is Pebble, the ACME test server, run for one test on loopback.
type pebble struct {
	Port  int            // of its ACME listener; its directory is https://localhost:Port/dir
	Roots *x509.CertPool // its TLS certificate's CA (pebble.minica.pem)
	CAPEM string         // the path of that CA
}

// repoRoot is the module's folder.
func repoRoot(t testing.TB) string {
	dir, _ := os.Getwd()
	for !fileExists(filepath.Join(dir, "go.mod")) {
		if dir == filepath.Dir(dir) {
			t.Fatal("go.mod not found")
		}
		dir = filepath.Dir(dir)
	}
	return dir
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// freePort returns a loopback port nothing listens on (network "tcp" or "udp").
func freePort(t testing.TB, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startPebble runs Pebble with real validation: HTTP-01 against
// 127.0.0.1:httpPort, and DNS through a loopback port where nothing
// answers, so a DNS name never validates and nothing leaves the host.
func startPebble(t testing.TB, httpPort int) *pebble {
	t.Helper()
	root := repoRoot(t)
	bin := filepath.Join(root, ".local", "bin", "pebble")
	if !fileExists(bin) {
		if os.Getenv("KEYCHEST_TEST_DATABASE_URL") != "" {
			t.Fatalf("%s missing: scripts/deps.sh test builds it", bin)
		}
		t.Skipf("%s missing: run scripts/deps.sh test", bin)
	}
	modcache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	certs := filepath.Join(strings.TrimSpace(string(modcache)), "github.com", "letsencrypt", "pebble", "v2@v2.10.1", "test", "certs")
	dir := t.TempDir()
	for try := 0; try < 5; try++ {
		p := &pebble{Port: freePort(t, "tcp"), CAPEM: filepath.Join(certs, "pebble.minica.pem")}
		conf, _ := json.Marshal(map[string]any{"pebble": map[string]any{
			"listenAddress":           fmt.Sprintf("127.0.0.1:%d", p.Port),
			"managementListenAddress": fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp")),
			"certificate":             filepath.Join(certs, "localhost", "cert.pem"),
			"privateKey":              filepath.Join(certs, "localhost", "key.pem"),
			"httpPort":                httpPort, "tlsPort": freePort(t, "tcp"), "ocspResponderURL": "",
			"externalAccountBindingRequired": false,
		}})
		os.WriteFile(filepath.Join(dir, "pebble.json"), conf, 0o644)
		cmd := exec.Command(bin, "-config", filepath.Join(dir, "pebble.json"), "-dnsserver", fmt.Sprintf("127.0.0.1:%d", freePort(t, "udp")))
		cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
		logf, _ := os.Create(filepath.Join(dir, "pebble.log"))
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		if waitListening(fmt.Sprintf("127.0.0.1:%d", p.Port), exited) {
			t.Cleanup(func() { cmd.Process.Kill(); <-exited })
			raw, _ := os.ReadFile(p.CAPEM)
			p.Roots = x509.NewCertPool()
			p.Roots.AppendCertsFromPEM(raw)
			return p
		}
		cmd.Process.Kill()
		<-exited
	}
	log, _ := os.ReadFile(filepath.Join(dir, "pebble.log"))
	t.Fatalf("pebble did not start:\n%s", log)
	return nil
}

func waitListening(addr string, exited <-chan struct{}) bool {
	for range 200 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return true
		}
		select {
		case <-exited:
			return false
		case <-time.After(25 * time.Millisecond):
		}
	}
	return false
}
