// SPDX-License-Identifier: Apache-2.0

package web

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/keychest/keychest-lined/acme"
	"github.com/keychest/keychest-lined/names"
	"github.com/keychest/keychest-lined/store"
)

// tooLarge is a batch past one of the limits: 413.
type tooLarge struct{ why string }

func (e tooLarge) Error() string { return e.why }

// requestCode is the status of a batch that could not be read.
func requestCode(err error) int {
	var big tooLarge
	if errors.As(err, &big) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

// parse reads a request's batch within the limits, with the domains its
// valid orders issued, and what it costs of the key's budget.
func (h *acmeEvents) parse(w http.ResponseWriter, r *http.Request) ([]store.ACMEEvent, int, error) {
	events, err := parseEvents(http.MaxBytesReader(w, r.Body, maxEventsBody), h.limits.MaxEvents)
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return nil, 0, tooLarge{fmt.Sprintf("the batch is larger than %d bytes: send fewer events at once", maxEventsBody)}
	}
	if err != nil {
		return nil, 0, err
	}
	cost, names := 0, 0
	for i := range events {
		f := acme.Read(events[i].Event, time.Time{})
		names += len(f.Names)
		cost += f.Rows()
		events[i].Issued = issuedDomains(f)
	}
	if h.limits.MaxNames > 0 && names > h.limits.MaxNames {
		return nil, 0, tooLarge{fmt.Sprintf("the batch names %d DNS names, more than %d: send fewer events at once", names, h.limits.MaxNames)}
	}
	return events, cost, nil
}

// issuedDomains are the DNS identifiers of an order that is valid, as
// domains on port 443 to add (a value that is not a bare name is left out).
func issuedDomains(f acme.Facts) []store.NewDomain {
	var out []store.NewDomain
	for _, name := range f.Issued() {
		if d, err := names.ParseDomain(name); err == nil {
			out = append(out, store.NewDomain{Name: d.Name, Port: d.Port, Wildcard: d.Wildcard})
		}
	}
	return out
}

// parseEvents reads a batch of JSON lines in the seed's envelope, at most
// maxEvents of them (0: no limit).
func parseEvents(r io.Reader, maxEvents int) ([]store.ACMEEvent, error) {
	var out []store.ACMEEvent
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxEventsBody)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		e, err := acme.ParseLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", n, err)
		}
		if maxEvents > 0 && len(out) == maxEvents {
			return nil, tooLarge{fmt.Sprintf("more than %d events in one batch: send fewer at once", maxEvents)}
		}
		out = append(out, store.ACMEEvent{Event: e})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no events")
	}
	return out, nil
}
