-- SPDX-License-Identifier: Apache-2.0
-- Relayed probes (issue 22). The take looks for a live job of each due
-- target behind a site (QueueDueJobs), and deleting a target cascades to
-- its jobs: both by target_id, which had no index (a scan of every job
-- ever queued, for each due target).

CREATE INDEX agent_jobs_target ON agent_jobs (target_id);

---- create above / drop below ----

DROP INDEX agent_jobs_target;
