// SPDX-License-Identifier: Apache-2.0

// Command keychest-bench loads a keychest-lined server the way shell
// clients do: every command on a NEW connection, one line (with or without
// a newline), one reply, close. It reports commands per second, latency
// percentiles, errors by kind, and the server's memory and CPU.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

// options are the command-line flags.
type options struct {
	addr     string
	conc     int
	duration time.Duration
	count    int
	mix      string
	newline  bool
	idle     int
	pid      int
	sources  int
	keys     int
	jsonOut  bool
	repeat   int
	format   string
	redis    bool

	hostile   bool
	slowloris int
	trickle   time.Duration
	floods    int
	pipeline  int
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", "127.0.0.1:10023", "server address")
	flag.IntVar(&o.conc, "c", 64, "concurrent clients")
	flag.DurationVar(&o.duration, "d", 10*time.Second, "how long to run (ignored with -n)")
	flag.IntVar(&o.count, "n", 0, "commands to send in all (0: run for -d)")
	flag.StringVar(&o.mix, "mix", "ping", "command mix: ping, apikey, add, claim, or weights like ping=1,add=3")
	flag.BoolVar(&o.newline, "newline", true, "end each line with a newline (false: like echo -ne, the server waits for its quiet period)")
	flag.IntVar(&o.idle, "idle", 0, "idle connections to hold open during the run")
	flag.IntVar(&o.pid, "pid", 0, "server process to read RSS and CPU time from /proc")
	flag.IntVar(&o.sources, "sources", 32, "source addresses 127.0.0.2 and up to spread connections over")
	flag.IntVar(&o.keys, "keys", 64, "API keys to create first for add")
	flag.BoolVar(&o.jsonOut, "json", false, "print the report as JSON")
	flag.IntVar(&o.repeat, "repeat", 1, "runs; the report gives medians (and the worst max)")
	flag.StringVar(&o.format, "format", "text", "text, json, or tsv (one line of numbers for scripts)")
	flag.BoolVar(&o.redis, "redis", false, "speak to a Redis server instead: PING on a new connection per command")
	flag.BoolVar(&o.hostile, "hostile", false, "attack the server during the run (slowloris, junk, NUL and 65 KB-line floods); the clients measured are the honest ones")
	flag.IntVar(&o.slowloris, "slowloris", 1500, "with -hostile: connections trickling a byte at a time")
	flag.DurationVar(&o.trickle, "trickle", 200*time.Millisecond, "with -hostile: time between two bytes of a slowloris connection")
	flag.IntVar(&o.floods, "floods", 2, "with -hostile: connections flooding each of junk, NUL bytes and 65 KB lines")
	flag.IntVar(&o.pipeline, "pipeline", 0, "instead of a load: N connections each send 65,000 bytes of \"command help\" lines and never read; prints the server's peak RSS in MB")
	flag.Parse()
	if o.pipeline > 0 {
		fmt.Printf("%.1f\n", pipelineRSS(o, o.pipeline))
		return
	}
	if o.jsonOut {
		o.format = "json"
	}
	mix, err := parseMix(o.mix)
	if err != nil {
		fmt.Fprintln(os.Stderr, "keychest-bench:", err)
		os.Exit(2)
	}
	var reps []*report
	for i := 0; i < max(1, o.repeat); i++ {
		rep, err := run(o, mix)
		if err != nil {
			fmt.Fprintln(os.Stderr, "keychest-bench:", err)
			os.Exit(1)
		}
		reps = append(reps, rep)
	}
	rep := median(reps)
	switch o.format {
	case "json":
		json.NewEncoder(os.Stdout).Encode(rep)
	case "tsv":
		fmt.Println(rep.TSV())
	default:
		fmt.Print(rep.String())
	}
}

// parseMix reads "ping" or "ping=1,add=3" into weights.
func parseMix(s string) (map[string]int, error) {
	mix := map[string]int{}
	for _, part := range strings.Split(s, ",") {
		name, weight, found := strings.Cut(strings.TrimSpace(part), "=")
		w := 1
		if found {
			if _, err := fmt.Sscan(weight, &w); err != nil || w < 0 {
				return nil, fmt.Errorf("bad weight in %q", part)
			}
		}
		switch name {
		case "ping", "apikey", "add", "claim":
			mix[name] += w
		default:
			return nil, fmt.Errorf("unknown command %q in -mix (ping, apikey, add, claim)", name)
		}
	}
	return mix, nil
}
