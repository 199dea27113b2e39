// SPDX-License-Identifier: Apache-2.0

package handlers

import (
	"strings"

	"github.com/keychest/keychest-lined/internal/ports"
	"github.com/keychest/keychest-lined/lineproto"
	"github.com/keychest/keychest-lined/names"
	"github.com/keychest/keychest-lined/store"
)

// refused answers a value the names package did not take: 400 with its
// reason.
func refused(err error) *lineproto.Error {
	if err == nil {
		return nil
	}
	return lineproto.Errorf(lineproto.CodeBadRequest, "%s", err.Error())
}

// parseDomain is names.ParseDomain answered as the protocol does.
func parseDomain(raw string) (names.Domain, *lineproto.Error) {
	d, err := names.ParseDomain(raw)
	return d, refused(err)
}

// parseEmail is names.ParseEmail answered as the protocol does.
func parseEmail(raw string) (string, *lineproto.Error) {
	email, err := names.ParseEmail(raw)
	return email, refused(err)
}

// parseAPIKey is names.ParseAPIKey answered as the protocol does.
func parseAPIKey(raw string) (store.KeyRef, *lineproto.Error) {
	ref, err := names.ParseAPIKey(raw)
	return ref, refused(err)
}

// portListMax caps the list of allowed ports quoted in a refusal, so that
// an operator's long list cannot stretch the reply line.
const portListMax = 200

// watchable refuses a domain on a port the monitor may not watch
// (KEYCHEST_MONITOR_PORTS), naming the ports it may.
func watchable(d names.Domain, allowed ports.Set) *lineproto.Error {
	if allowed.Allows(d.Port) {
		return nil
	}
	list := allowed.String()
	if len(list) > portListMax {
		list = list[:strings.LastIndexByte(list[:portListMax], ',')] + ",..."
	}
	return lineproto.Errorf(lineproto.CodeBadRequest, "port %d is not monitored here; allowed ports: %s", d.Port, list)
}
