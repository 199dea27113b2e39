// SPDX-License-Identifier: Apache-2.0

// Package lineproto is keychest-lined's line-protocol server: it knows
// bytes and framing, and nothing of what commands mean (package handlers)
// or of SQL (package store).
//
// A client sends lines of whitespace-separated name/value pairs, one of
// them "command <verb>" ("command add domain example.com apikey K"), each
// ended by LF, or by a quiet period or the client's half-close (the seed's
// "echo -ne"); each gets one reply: an optional "data" line and a
// "status" line (docs/protocol.md). The pieces:
//
//   - Framer cuts a connection's bytes into lines, and ParseLine turns a
//     line into a Request; Reply renders the answer, capped at
//     MaxReplyBytes, and Error carries a status code to the wire.
//   - Handler (implemented by handlers.Mux) answers requests, and says
//     which may block; a Starter can begin some without a worker.
//   - Server runs the event loop (lineproto/internal/evloop, on evio) and
//     the connection's state machine (conn.go): cheap requests are
//     answered on the loop; a blocking request is answered in flight, its
//     reply written straight to the socket by a worker or a Starter
//     (async.go, workers.go), or by a session goroutine that takes the connection
//     over with Go's net.Conn and deadlines (session.go) when the
//     connection cannot stay in the loop: an unfinished line, output past
//     the loop's budget, or a reply that closes.
//   - The server enforces the connection limits (total and per client,
//     limits.go), the idle, lifetime and quiet-period deadlines
//     (deadlines.go), a trusted proxy's PROXY header (proxy.go), and a
//     rate limit on the log entries a client can cause (loglimit.go).
//
// docs/architecture.md explains why the loop hands connections over, and
// what each evio defect costs.
package lineproto
