// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/internal/nsdtest"
	"github.com/keychest/keychest-lined/internal/slapdtest"
)

// heapAfter runs f and reports the time it took and the live heap after
// it (with what f returned still held), in MiB.
func heapAfter(b *testing.B, f func() any) {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	keep := f()
	took := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(took.Seconds(), "s/pass")
	b.ReportMetric(float64(after.HeapInuse)/(1<<20), "MiB-heap")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/(1<<20), "MiB-alloc")
	runtime.KeepAlive(keep)
}

// reportHeap reports the live heap now, after a collection.
func reportHeap(b *testing.B, unit string) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	b.ReportMetric(float64(m.HeapInuse)/(1<<20), unit)
}

// A zone of 100,000 names from NSD: transfer and candidates (measured;
// go test -run '^$' -bench ZoneTransfer100k -benchtime 1x ./agent/).
func BenchmarkZoneTransfer100k(b *testing.B) {
	var z strings.Builder
	for i := range 100_000 {
		fmt.Fprintf(&z, "h%06d IN A 10.%d.%d.%d\n", i, 20+i/65536, (i/256)%256, i%256)
	}
	addr := nsdtest.Start(b, nsdtest.Zone(z.String()))
	dir := b.TempDir()
	os.WriteFile(filepath.Join(dir, "tsig.secret"), []byte(nsdtest.Secret), 0o600)
	src := ZoneSource{Zone: "corp.example.", Server: addr, Ports: []int{443}, TSIG: &TSIG{Name: "agent-key.", Alg: "hmac-sha256.", SecretFile: "tsig.secret"}}
	allow, _ := ParseAllow("allow 10.20.0.0/16 443\n")
	for b.Loop() {
		heapAfter(b, func() any {
			rrs, err := TransferZone(context.Background(), src, dir, os.Getuid(), time.Minute)
			if err != nil {
				b.Fatal(err)
			}
			reportHeap(b, "MiB-heap-records") // the whole zone held
			c := ZoneCandidates(src, rrs, allow)
			if len(c) < 65_000 {
				b.Fatalf("%d candidates", len(c))
			}
			return c
		})
	}
}

// 10,000 certificates from slapd with a paged search (measured).
func BenchmarkLDAPRead10k(b *testing.B) {
	url := slapdtest.Start(b, slapdtest.People(b, 10_000))
	dir := b.TempDir()
	os.WriteFile(filepath.Join(dir, "ldap.pw"), []byte(slapdtest.Password), 0o600)
	src := LDAPSource{URL: url, Base: slapdtest.Base, BindDN: slapdtest.Agent, PasswordFile: "ldap.pw"}
	for b.Loop() {
		heapAfter(b, func() any {
			certs, _, err := ReadLDAP(context.Background(), src, dir, os.Getuid(), time.Minute)
			if err != nil || len(certs) != 10_001 {
				b.Fatalf("%d %v", len(certs), err)
			}
			reportHeap(b, "MiB-heap-certs")
			return certs
		})
	}
}
