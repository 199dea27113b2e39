package web

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

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
		names += len(store.EventNames(events[i]))
		cost += store.ACMERows(events[i])
		events[i].Issued = issuedDomains(events[i])
	}
	if h.limits.MaxNames > 0 && names > h.limits.MaxNames {
		return nil, 0, tooLarge{fmt.Sprintf("the batch names %d DNS names, more than %d: send fewer events at once", names, h.limits.MaxNames)}
	}
	return events, cost, nil
}

// issuedDomains are the DNS identifiers of an order that is valid, as
// domains on port 443 to add (a value that is not a bare name is left out).
func issuedDomains(e store.ACMEEvent) []store.NewDomain {
	if e.Msg != "order" && e.Msg != "final" && e.Msg != "new-order" {
		return nil
	}
	var p struct {
		Status      string `json:"status"`
		Identifiers []struct{ Type, Value string }
		Domains     []struct{ Type, Value string }
	}
	if json.Unmarshal(e.Params, &p) != nil || p.Status != "valid" {
		return nil
	}
	var out []store.NewDomain
	for _, id := range append(p.Identifiers, p.Domains...) {
		// RFC 8555 section 9.7.7: a "dns" identifier's value is a bare
		// domain name. One with a port, scheme or path is not a name an
		// ACME server issued for, and would register another port.
		if id.Type != "dns" || strings.ContainsAny(id.Value, ":/") {
			continue
		}
		if d, err := names.ParseDomain(id.Value); err == nil {
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
		var env struct {
			Msg    string          `json:"msg"`
			Params json.RawMessage `json:"params"`
			Time   string          `json:"time"`
			Proxy  string          `json:"proxy"`
			ID     int64           `json:"id"`
		}
		if err := json.Unmarshal(line, &env); err != nil {
			return nil, fmt.Errorf("line %d: not JSON: %v", n, err)
		}
		if env.Proxy == "" || len(env.Proxy) > 254 || env.ID <= 0 || env.Msg == "" || len(env.Msg) > 32 ||
			len(env.Params) == 0 || env.Params[0] != '{' {
			return nil, fmt.Errorf("line %d: proxy, a positive id, msg and a params object are required", n)
		}
		if maxEvents > 0 && len(out) == maxEvents {
			return nil, tooLarge{fmt.Sprintf("more than %d events in one batch: send fewer at once", maxEvents)}
		}
		t, _ := time.Parse("2006-01-02 15:04:05", env.Time)
		out = append(out, store.ACMEEvent{Proxy: env.Proxy, ID: env.ID, Msg: env.Msg, Time: t, Params: env.Params,
			Envelope: append(json.RawMessage(nil), line...)})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no events")
	}
	return out, nil
}
