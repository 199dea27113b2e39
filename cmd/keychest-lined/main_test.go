// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"crypto/sha256"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keychest/keychest-lined/store"
)

// TestEndToEnd wires the server as main does, on a fresh database, and
// speaks the seed's protocol to it over raw TCP, sending like "echo -ne"
// and reading once like "dd bs=1000 count=1".
func TestEndToEnd(t *testing.T) {
	a := startApp(t, nil)
	if newest, err := store.NewestSchema(); err != nil || a.schema != newest {
		t.Fatalf("schema version %d, want the newest, %d (%v)", a.schema, newest, err)
	}
	c, err := net.Dial("tcp", a.lineAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	exchange := func(line string) string {
		t.Helper()
		if _, err := c.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1000)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
	reply := exchange("command apikey")
	key, status, _ := strings.Cut(strings.TrimPrefix(reply, "data "), "\n")
	if status != "status ok 200 new api key\n" {
		t.Fatalf("apikey: %q", reply)
	}
	steps := []struct{ send, want string }{
		{"command claim apikey " + key + " email Admin@Example.com", "status ok 200 claimed for admin@example.com; its domains stay pending until the owner confirms by mail\n"},
		{"command add domain keychest.net apikey " + key + "\n", "status ok 200 domain keychest.net:443 added (pending until the owner confirms by mail)\n"},
		{"command add apikey " + key + " domain keychest.net\r\n", "status ok 200 domain keychest.net:443 already registered (pending until the owner confirms by mail)\n"},
		{"command add apikey " + key + " domain 127.0.0.1", "status error 400 IP addresses are not accepted; send a host name\n"},
		{"command quit\n", "status ok 200 bye\n"},
	}
	for _, s := range steps {
		if got := exchange(s.send); got != s.want {
			t.Fatalf("%q: got %q, want %q", s.send, got, s.want)
		}
	}
	if rest, _ := io.ReadAll(c); len(rest) != 0 {
		t.Fatalf("after quit: %q", rest)
	}

	conn, err := pgx.Connect(context.Background(), a.cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	hash := sha256.Sum256([]byte(key))
	var row string
	err = conn.QueryRow(context.Background(), `SELECT a.email || ' ' || d.name || ':' || d.port
		FROM api_keys k JOIN accounts a ON a.id = k.account_id JOIN domains d ON d.api_key_id = k.id
		WHERE k.key_hash = $1`, hash[:]).Scan(&row)
	if err != nil || row != "admin@example.com keychest.net:443" {
		t.Fatalf("stored %q, %v", row, err)
	}
}
