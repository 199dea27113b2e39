// SPDX-License-Identifier: Apache-2.0

package amp

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"time"
)

// lineCommand sends one command over keychest-lined's line protocol and
// returns its data line (if any) and its status line.
func lineCommand(ctx context.Context, addr, command string) (data string, err error) {
	var d net.Dialer
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	c.SetDeadline(deadline)
	if _, err := fmt.Fprintf(c, "%s\n", command); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("%s: %w", firstWord(command), err)
		}
		l = strings.TrimRight(l, "\r\n")
		switch {
		case strings.HasPrefix(l, "data "):
			data = strings.TrimPrefix(l, "data ")
		case strings.HasPrefix(l, "status ok"):
			return data, nil
		case strings.HasPrefix(l, "status "):
			return "", fmt.Errorf("%s: %s", firstWord(command), l)
		}
	}
}

func firstWord(command string) string {
	f := strings.Fields(command)
	if len(f) > 1 {
		return f[0] + " " + f[1]
	}
	return command
}

// EnsureKey gets an API key over the line protocol when the state has none,
// and claims it for email when asked and not done yet.
func EnsureKey(ctx context.Context, st *State, addr, email string) (string, error) {
	key, claimed := st.Key()
	if key == "" {
		k, err := lineCommand(ctx, addr, "command apikey")
		if err != nil {
			return "", err
		}
		if k == "" || strings.ContainsAny(k, " \t") {
			return "", fmt.Errorf("command apikey: unexpected key %q", k)
		}
		if err := st.SetKey(k, ""); err != nil {
			return "", err
		}
		key = k
	}
	if email != "" && !strings.EqualFold(claimed, email) {
		if _, err := lineCommand(ctx, addr, "command claim apikey "+key+" email "+email); err != nil {
			return key, err
		}
		if err := st.SetKey(key, email); err != nil {
			return key, err
		}
	}
	return key, nil
}
