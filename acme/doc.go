// SPDX-License-Identifier: Apache-2.0

// Package acme holds the rules about ACME events: the journal line
// keychest-amp writes and keychest-lined reads (Envelope, Params), what an
// event says (Facts), and the judge that turns facts and counts into
// finding changes, with the renewal check's. It does no I/O: store gathers
// the facts and counts with SQL and writes what the judge decides.
//
// It imports only the standard library and package finding.
package acme
