// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/internal/nsdtest"
)

// selfSigned returns a certificate for the IP address ip, and its PEM.
func selfSigned(t *testing.T, ip net.IP) (tls.Certificate, []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "keychest test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{ip},
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// The agent reaches the server through Debian's tinyproxy, a real HTTP
// CONNECT proxy, on loopback. The server is named 0.0.0.0 (which Linux
// connects to on the host itself): Go never proxies a loopback name, and
// this one needs no resolution by anyone.
func TestClientThroughTinyproxy(t *testing.T) {
	bin, err := exec.LookPath("tinyproxy")
	if err != nil {
		t.Skip("tinyproxy is not installed (scripts/deps.sh test installs it)")
	}
	cert, pemCA := selfSigned(t, net.IPv4zero)
	hits := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		fmt.Fprint(w, `{"id":"a@agents.test","claimed":true}`)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	proxyPort := nsdtest.FreePort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "tinyproxy.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("Port %d\nListen 127.0.0.1\nTimeout 10\nAllow 127.0.0.1\nConnectPort %d\n"+
		"MaxClients 4\nLogLevel Connect\n", proxyPort, port)), 0o644)
	if os.Getuid() == 0 {
		f, _ := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
		fmt.Fprint(f, "User nobody\nGroup nogroup\n")
		f.Close()
	}
	proxy := exec.Command(bin, "-d", "-c", conf)
	var logText syncBuffer
	proxy.Stderr, proxy.Stdout = &logText, &logText
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { proxy.Process.Kill(); proxy.Wait() }()
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", proxyPort))

	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, pemCA, 0o600)
	t.Setenv("HTTPS_PROXY", fmt.Sprintf("http://127.0.0.1:%d", proxyPort))
	t.Setenv("NO_PROXY", "")
	c, err := NewClient(fmt.Sprintf("https://0.0.0.0:%d", port), ca)
	if err != nil {
		t.Fatal(err)
	}
	var beat Beat
	if err := c.postJSON(context.Background(), PathHeartbeat, Summary{}, &beat); err != nil {
		t.Fatal(err)
	}
	c.http.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logText.String(), "CONNECT 0.0.0.0") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !beat.Claimed || hits != 1 || !strings.Contains(logText.String(), fmt.Sprintf("CONNECT 0.0.0.0:%d", port)) {
		t.Fatalf("beat %+v, hits %d, proxy log:\n%s", beat, hits, logText.String())
	}
}

// waitListening waits until something accepts connections on addr.
func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncBuffer is a buffer a child process writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
