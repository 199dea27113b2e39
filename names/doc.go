// SPDX-License-Identifier: Apache-2.0

// Package names holds the rules for what clients name: a domain to watch
// (ParseDomain), an e-mail address (ParseEmail), an API key (NewAPIKey,
// ParseAPIKey, HashAPIKey) and a link token (NewToken). It knows no
// protocol: a refusal is an *Error whose text is the reason, worded for
// the client, and each caller maps it to its own reply (the line
// protocol's 400, the web's 401).
package names
