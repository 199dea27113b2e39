-- SPDX-License-Identifier: Apache-2.0
-- Relayed probes (issue 22). The take looks for a live job of each due
-- target behind a site (QueueDueJobs), and deleting a target cascades to
-- its jobs: both by target_id, which had no index (a scan of every job
-- ever queued, for each due target). And what the service's own
-- revocation check of a relayed certificate told (ok, revoked; unknown:
-- the CRL or OCSP responder did not answer, or is on an address the
-- service's guard refuses; none: the certificate names neither), shown
-- by "cert" as revocation=.

CREATE INDEX agent_jobs_target ON agent_jobs (target_id);
ALTER TABLE agent_targets ADD COLUMN revocation text CHECK (revocation IN ('ok', 'revoked', 'unknown', 'none'));

---- create above / drop below ----

ALTER TABLE agent_targets DROP COLUMN revocation;
DROP INDEX agent_jobs_target;
