// Package agent is keychest-agent: a small program that an owner runs
// inside a private network to extend the monitor's reach there. It
// registers with keychest-lined over HTTPS, heartbeats until its owner
// claims it, and obeys a local allow-list (allow.conf) that the service
// can never change. See docs/agent.md.
//
// What is built: the allow-list and its dial-time check, the ownership
// rule for DIR and allow.conf, the identity file, JSON logs, jittered
// back-off, registration, heartbeats, claim codes and the log upload. Jobs
// and the relay of the monitor's probes are not built yet.
package agent
