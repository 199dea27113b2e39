// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/rs/zerolog"
	"github.com/rs/zerolog/diode"
)

// newLogger returns the JSON logger. Every entry carries the time of
// logging ("time"), the host's name and address, the version and the pid;
// call sites add the event code ("code") and the time of the event
// ("event_time"). Entries go through a ring buffer, drained every 10 ms, so
// a slow stdout never stalls the event loop and logging wakes no goroutine
// per entry; if it overflows, the count of dropped entries is reported on
// stderr.
func newLogger(level, version string) (zerolog.Logger, io.Closer) {
	zerolog.TimeFieldFormat = time.RFC3339Nano
	zerolog.DurationFieldUnit = time.Millisecond
	zerolog.DurationFieldInteger = false
	w := diode.NewWriter(os.Stdout, 16384, 10*time.Millisecond, func(missed int) {
		fmt.Fprintf(os.Stderr, "keychest-lined: dropped %d log entries\n", missed)
	})
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		lvl = zerolog.InfoLevel
	}
	host, _ := os.Hostname()
	log := zerolog.New(w).Level(lvl).With().Timestamp().
		Str("host", host).Str("ip", hostIP()).Str("version", version).Int("pid", os.Getpid()).
		Logger()
	return log, w
}

// hostIP returns the first non-loopback address of the host, or "".
func hostIP() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}
