// SPDX-License-Identifier: Apache-2.0

// Package web serves keychest-lined's HTTP endpoints:
//
//   - the links of the mails (confirm, block, approve, revoke, alerts_off,
//     digest_off): a GET only shows what a link would do; only the POST
//     from the page's button acts, so mail scanners that follow links
//     change nothing;
//   - GET /account/{token}, the read-only page of an account's
//     certificates;
//   - POST /api/v1/acme/events, the JSON lines keychest-amp reports,
//     authenticated by a claimed key of a confirmed account;
//   - /healthz, and /metrics (or /metrics alone, on a listener of its
//     own: MetricsOnly), with the server's Prometheus metrics.
//
// New takes its stores as interfaces declared here (Deps); the server
// wires *store.Postgres into each, checked at compile time.
package web
