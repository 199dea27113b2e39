// SPDX-License-Identifier: Apache-2.0

// Package evloop runs lineproto's connections on evio (github.com/tidwall/evio
// v1.0.8), the event loop the design chose, and keeps everything that
// depends on evio here: its callbacks and actions, the workarounds for its
// defects (lost wakes, a wake that overwrites pending output and action,
// a close on EOF, no Stop), the reads of its unexported fields by
// reflection, and the changes to its epoll set from other goroutines.
//
// lineproto sees only the small interface declared in loop.go: a Handler
// opens a Session per connection; the loop calls the Session with the
// bytes it reads (or nil when woken) and carries out the Action returned
// (go on, close, or detach to a net.Conn with deadlines); the Session
// holds a Conn through which it can wake the loop, learn whether output
// may still be queued, and pause the connection while another goroutine
// writes a reply straight to the socket (Paused). A trial of another loop
// replaces this package alone.
//
// See docs/architecture.md, "Why the loop hands connections over".
package evloop
