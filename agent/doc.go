// SPDX-License-Identifier: Apache-2.0

// Package agent is keychest-agent: a small program that an owner runs
// inside a private network to extend the monitor's reach there. It
// registers with keychest-lined over HTTPS, heartbeats until its owner
// claims it, and obeys a local allow-list (allow.conf) that the service
// can never change. See docs/agent.md.
//
// Once claimed, it long-polls for its site's jobs, resolves each job's
// name itself, dials the addresses allow.conf permits (checked at dial
// time), and relays each to the service, which probes through it with the
// monitor's own code: the agent holds no audit logic and sees only
// ciphertext.
package agent
