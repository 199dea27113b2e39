// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/keychest/keychest-lined/internal/logcode"
)

func TestFlagsWinOverEnvironment(t *testing.T) {
	t.Setenv("KEYCHESTAMP_PORT", "9000")
	t.Setenv("KEYCHESTAMP_ACME_HOSTS", "a.example,b.example:14000")
	t.Setenv("KEYCHESTAMP_LINED", "127.0.0.1:10023")
	t.Setenv("KEYCHESTAMP_API", "http://127.0.0.1:8080")
	c, err := loadConfig([]string{"-a", "127.0.0.2", "--acme-host", "c.example"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 9000 || c.Addr != "127.0.0.2" || strings.Join(c.ACMEHosts, " ") != "c.example" || c.File != "" || c.NoAPI {
		t.Errorf("%+v", c)
	}
	if c, err = loadConfig([]string{"--noapi", "-p", "1"}, io.Discard); err != nil || c.File != defaultAuditFile || c.Port != 1 {
		t.Errorf("-n: %+v %v", c, err)
	}
	if c, err = loadConfig([]string{"-n", "-f", "/tmp/x.json"}, io.Discard); err != nil || c.File != "/tmp/x.json" {
		t.Errorf("-n -f: %+v %v", c, err)
	}
}

func TestTunnelSettings(t *testing.T) {
	c, err := loadConfig([]string{"-n"}, io.Discard)
	if tp, _ := c.tunnel(); err != nil || tp.Ports.String() != "443" || len(tp.Nets) != 0 {
		t.Errorf("defaults: %+v %v", tp, err)
	}
	t.Setenv("KEYCHESTAMP_TUNNEL_PORTS", "443,8443")
	t.Setenv("KEYCHESTAMP_TUNNEL_NETS", "10.0.0.0/8,192.168.1.7")
	c, err = loadConfig([]string{"-n"}, io.Discard)
	if tp, _ := c.tunnel(); err != nil || tp.Ports.String() != "443,8443" || len(tp.Nets) != 2 || tp.Nets[1].String() != "192.168.1.7/32" {
		t.Errorf("environment: %+v %v", tp, err)
	}
	c, err = loadConfig([]string{"-n", "--tunnel-ports", "none", "--tunnel-nets", "127.0.0.0/8"}, io.Discard)
	if tp, _ := c.tunnel(); err != nil || !tp.Ports.IsZero() || len(tp.Nets) != 1 {
		t.Errorf("flags: %+v %v", tp, err)
	}
}

func TestConfigRefusals(t *testing.T) {
	for _, args := range [][]string{{"--allow", "not-a-net"}, {"-p", "70000"}, {"extra"}, {"--bogus"}, {},
		{"-n", "--tunnel-ports", "0"}, {"-n", "--tunnel-ports", "none,443"}, {"-n", "--tunnel-nets", "10.0.0.0/33"}} {
		if _, err := loadConfig(args, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestCAFlagPrintsTheRoot(t *testing.T) {
	dir := t.TempDir()
	var out, errs bytes.Buffer
	if code := run([]string{"-c", "-e", dir}, &out, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	block, _ := pem.Decode(out.Bytes())
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !cert.IsCA || !cert.PermittedDNSDomainsCritical {
		t.Fatalf("%v %v", cert, err)
	}
	out.Reset()
	run([]string{"--ca", "--etc", dir}, &out, &errs)
	again, _ := pem.Decode(out.Bytes())
	if !bytes.Equal(again.Bytes, block.Bytes) || !strings.Contains(errs.String(), logcode.AMPNewRoot) {
		t.Errorf("second -c gave another root, or the first did not say it created one")
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, "ca.*")); len(matches) != 2 {
		t.Errorf("files: %v", matches)
	}
	if code := run([]string{"-h"}, &out, &errs); code != 0 {
		t.Errorf("-h: exit %d", code)
	}
}

// The package's /etc/default/keychest-amp shows every setting, each with
// its default (KEYCHESTAMP_ETC with the unit's folder).
func TestPackagedDefaultsListEverySetting(t *testing.T) {
	text, err := os.ReadFile("../../packaging/keychest-amp.default")
	if err != nil {
		t.Fatal(err)
	}
	shown := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^#KEYCHESTAMP_([A-Z_]+)=(.*)$`).FindAllStringSubmatch(string(text), -1) {
		shown[m[1]] = m[2]
	}
	ct := reflect.TypeOf(Config{})
	for i := 0; i < ct.NumField(); i++ {
		f := ct.Field(i)
		name := f.Tag.Get("envconfig")
		if f.Tag.Get("ignored") == "true" || name == "" {
			continue
		}
		want := f.Tag.Get("default")
		if f.Type.Kind() == reflect.Bool && want == "" {
			want = "false"
		}
		if name == "ETC" {
			want = "/var/lib/keychestamp"
		}
		got, ok := shown[name]
		if !ok || got != want {
			t.Errorf("KEYCHESTAMP_%s: shown %q (%v), want %q", name, got, ok, want)
		}
		delete(shown, name)
	}
	for name := range shown {
		t.Errorf("KEYCHESTAMP_%s is no setting", name)
	}
}
