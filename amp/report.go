// SPDX-License-Identifier: Apache-2.0

package amp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/internal/logcode"
)

// Reporting limits.
const (
	batchBytes = 1 << 20
	// batchEvents is the most events one POST carries: keychest-lined
	// takes KEYCHEST_ACME_MAX_EVENTS (1000 by default) and answers 413
	// past it, or past KEYCHEST_ACME_MAX_NAMES; a batch refused with 413
	// is sent again in halves.
	batchEvents  = 500
	retryMin     = 500 * time.Millisecond
	retryMax     = 30 * time.Second
	postTimeout  = 30 * time.Second
	EventsPath   = "/api/v1/acme/events"
	eventsFormat = "application/x-ndjson"
)

// Reporter sends the queue to keychest-lined in batches, in its own
// goroutine: proxy traffic never waits for it.
type Reporter struct {
	Queue *Queue
	State *State
	Lined string // HOST:PORT of the line protocol, for the API key
	API   string // base URL of the web listener
	Email string // claim the key for this address
	Log   zerolog.Logger

	client *http.Client
	lines  int // the most events the next batch carries; 0: batchEvents
}

// Run reports until ctx ends, then tries once more to send what waits,
// for at most flush.
func (r *Reporter) Run(ctx context.Context, flush time.Duration) {
	r.client = &http.Client{Timeout: postTimeout, Transport: &http.Transport{Proxy: nil}}
	if _, err := EnsureKey(ctx, r.State, r.Lined, r.Email); err != nil {
		r.Log.Warn().Str("code", logcode.AMPNoKey).Time("event_time", time.Now()).Err(err).Msg("no API key from keychest-lined yet; will retry")
	}
	wait := retryMin
	failing := false
	for ctx.Err() == nil {
		if r.Queue.Len() == 0 {
			select {
			case <-r.Queue.Ready():
			case <-ctx.Done():
			}
			continue
		}
		err := r.sendOne(ctx)
		if err == nil {
			if failing {
				r.Log.Info().Str("code", logcode.AMPReportRecovered).Time("event_time", time.Now()).Int("backlog", r.Queue.Len()).Msg("keychest-lined reachable again")
			}
			failing, wait = false, retryMin
			continue
		}
		if !failing || wait == retryMax {
			r.Log.Warn().Str("code", logcode.AMPReportFailed).Time("event_time", time.Now()).Err(err).Int("backlog", r.Queue.Len()).Msg("reporting to keychest-lined failed; events wait in the queue")
		}
		failing = true
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
		wait = min(wait*2, retryMax)
	}
	r.drain(flush)
}

// drain sends what waits, for at most d, at shutdown.
func (r *Reporter) drain(d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for r.Queue.Len() > 0 && ctx.Err() == nil {
		if err := r.sendOne(ctx); err != nil {
			return
		}
	}
}

// sendOne posts the batch at the head of the queue and acknowledges it.
func (r *Reporter) sendOne(ctx context.Context) error {
	key, err := EnsureKey(ctx, r.State, r.Lined, r.Email)
	if key == "" {
		return fmt.Errorf("api key from %s: %w", r.Lined, err)
	}
	if err != nil {
		r.Log.Warn().Str("code", logcode.AMPClaimFailed).Time("event_time", time.Now()).Err(err).Msg("claiming the API key failed; will retry")
	}
	batch, end, err := r.Queue.Peek(batchBytes)
	if err != nil || len(batch) == 0 {
		return err
	}
	batch, end = firstLines(batch, end, r.maxLines())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(r.API, "/")+EventsPath, bytes.NewReader(batch))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", eventsFormat)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch resp.StatusCode {
	case http.StatusOK:
		r.lines = min(batchEvents, 2*r.maxLines())
		return r.Queue.Ack(end)
	case http.StatusRequestEntityTooLarge:
		return r.refused(batch, end, logcode.AMPEventTooLarge, strings.TrimSpace(string(body)))
	case http.StatusBadRequest:
		return r.refused(batch, end, logcode.AMPEventRefused, strings.TrimSpace(string(body)))
	}
	return fmt.Errorf("POST %s: %s: %s", EventsPath, resp.Status, strings.TrimSpace(string(body)))
}

// maxLines is the most events the next batch carries.
func (r *Reporter) maxLines() int {
	if r.lines <= 0 {
		return batchEvents
	}
	return r.lines
}

// refused handles a batch keychest-lined refused for its content (413: too
// large; 400: a line it cannot take): a batch of several lines is sent
// again in halves, so that the one line refused is found; that line, sent
// alone, is dropped and logged under code, and the queue moves on. Without
// this, one bad line would hold every later event back for good.
func (r *Reporter) refused(batch []byte, end int64, code, why string) error {
	n := bytes.Count(batch, []byte{'\n'})
	if n > 1 {
		r.lines = n / 2
		return nil
	}
	r.Log.Warn().Str("code", code).Time("event_time", time.Now()).Int64("offset", end).Str("error", why).
		Msg("keychest-lined refuses this event: dropped")
	return r.Queue.Ack(end)
}

// firstLines cuts a batch, which ends at end in the queue, to its first n
// lines.
func firstLines(batch []byte, end int64, n int) ([]byte, int64) {
	cut := 0
	for i := 0; i < n; i++ {
		nl := bytes.IndexByte(batch[cut:], '\n')
		if nl < 0 {
			return batch, end
		}
		cut += nl + 1
	}
	return batch[:cut], end - int64(len(batch)-cut)
}
