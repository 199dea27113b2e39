// SPDX-License-Identifier: Apache-2.0

// Package amp is keychest-amp, an ACME proxy: a forward proxy that
// intercepts the TLS of ACME servers with a name-constrained root of its
// own, relays each request unchanged, logs what ACME clients do as JSON
// lines in the envelope of the original keychestamp, and reports those
// lines to keychest-lined. Every other host is tunnelled untouched.
package amp
