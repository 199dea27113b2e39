// SPDX-License-Identifier: Apache-2.0

package store

import "context"

// AddTogether runs the adds as AddDomain would if they all arrived at
// once: those refuseEarly refuses get their error, the others form one
// group-commit batch. It returns each one's outcome and how many batches
// were sent.
func (p *Postgres) AddTogether(ds []NewDomain) ([]AddResult, []error, int64) {
	before := p.writes.sent.Load()
	res, errs := make([]AddResult, len(ds)), make([]error, len(ds))
	ops := make([]*writeOp, len(ds))
	var batch []*writeOp
	for i, d := range ds {
		if errs[i] = refuseEarly(d); errs[i] != nil {
			continue
		}
		ops[i] = addOp(d)
		ops[i].ctx, ops[i].done = context.Background(), make(chan error, 1)
		batch = append(batch, ops[i])
	}
	p.writes.commit(batch)
	for i, op := range ops {
		if op == nil {
			continue
		}
		if errs[i] = <-op.done; errs[i] == nil {
			res[i], errs[i] = op.add.result()
		}
	}
	return res, errs, p.writes.sent.Load() - before
}

// SweepFullBuckets runs one sweep of rate_buckets.
func (p *Postgres) SweepFullBuckets() error { return p.sweepFullBuckets(context.Background()) }

// AddDomainsSQL is the adds' set statement, for a test of its plan.
var AddDomainsSQL = addDomainsSQL

// RemoveSiteTargetSQL is the removal's statement of a target behind a
// site, for a test of its plan.
var RemoveSiteTargetSQL = removeSiteTargetSQL
