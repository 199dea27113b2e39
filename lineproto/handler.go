// SPDX-License-Identifier: Apache-2.0

package lineproto

import "context"

// Handler answers requests, the way http.Handler answers HTTP requests.
type Handler interface {
	// Blocking reports whether Serve may block for req, for example on the
	// database. Serve never runs such a request on the event loop: a
	// worker serves it, unless the handler is a Starter that starts it.
	Blocking(req *Request) bool
	// Serve answers req. For a blocking request ctx ends at the request
	// timeout. A reply with a code other than 200 reports a failure.
	Serve(ctx context.Context, req *Request) Reply
}

// Starter is a Handler that can begin some requests without blocking and
// answer them later, from any goroutine: no worker waits for them.
type Starter interface {
	// Start begins req, if it is one it starts this way, and calls done
	// exactly once with the reply; it reports false (and never calls done)
	// otherwise. ctx ends at the request's deadline.
	Start(ctx context.Context, req *Request, done func(Reply)) bool
}
