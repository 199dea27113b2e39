package store

import "context"

// AddTogether runs the adds as one group-commit batch, as a writer does
// with the adds it finds waiting, and returns each one's outcome and how
// many batches were sent.
func (p *Postgres) AddTogether(ds []NewDomain) ([]AddResult, []error, int64) {
	before := p.writes.sent.Load()
	ops := make([]*writeOp, len(ds))
	results := make([]func() (AddResult, error), len(ds))
	for i, d := range ds {
		ops[i], results[i] = addDomainOp(d)
		ops[i].ctx, ops[i].done = context.Background(), make(chan error, 1)
	}
	p.writes.commit(append([]*writeOp(nil), ops...))
	res, errs := make([]AddResult, len(ds)), make([]error, len(ds))
	for i, op := range ops {
		if errs[i] = <-op.done; errs[i] == nil {
			res[i], errs[i] = results[i]()
		}
	}
	return res, errs, p.writes.sent.Load() - before
}

// SweepFullBuckets runs one sweep of rate_buckets.
func (p *Postgres) SweepFullBuckets() error { return p.sweepFullBuckets(context.Background()) }
