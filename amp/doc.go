// SPDX-License-Identifier: Apache-2.0

// Package amp is keychest-amp, an ACME proxy: a forward proxy that
// intercepts the TLS of ACME servers with a name-constrained root of its
// own, relays each request unchanged, logs what ACME clients do as JSON
// lines in the envelope of the original keychestamp, and reports those
// lines to keychest-lined (journal, queue, report), under the identity and
// API key it keeps in its state file. A CONNECT to any other host is
// tunnelled untouched, but only to a port of --tunnel-ports and an address
// that is public or in --tunnel-nets (internal/netguard), never to an ACME
// host's address; the rest is refused with 403.
package amp
