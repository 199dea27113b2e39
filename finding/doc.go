// SPDX-License-Identifier: Apache-2.0

// Package finding holds the rules about findings that every other package
// follows: the kinds of finding, the severities and their one order (in Go
// and as SQL), what a probe or an ACME event changes (Verdict), the line
// of an alert mail (AlertItem), when a change is mailed, when the weekly
// digest is due, and what an owner is advised to do about each kind.
//
// It imports only the standard library. The monitor and the ACME judge
// raise findings, store writes them, the mailer words them: each of them
// asks this package, so a new kind or severity is added here (and in the
// judge that raises it) only. See docs/finding-kinds.md.
package finding
