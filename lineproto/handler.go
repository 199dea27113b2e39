package lineproto

import "context"

// Handler answers requests, the way http.Handler answers HTTP requests.
type Handler interface {
	// Blocking reports whether Serve may block for req, for example on the
	// database. Such requests run on a worker, never on the event loop.
	Blocking(req *Request) bool
	// Serve answers req. For a blocking request ctx ends at the request
	// timeout. A reply with a code other than 200 reports a failure.
	Serve(ctx context.Context, req *Request) Reply
}
