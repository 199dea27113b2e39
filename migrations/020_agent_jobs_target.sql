-- SPDX-License-Identifier: Apache-2.0
-- A target's jobs are found through their target: removing a target lets
-- go of its open jobs (UPDATE ... WHERE target_id = ...), and deleting one
-- (Housekeep's purge of removed targets) cascades to all its jobs, done
-- or not, so the index is over every row, not only the open ones.
-- Housekeep deletes jobs a day after they were done or void
-- (store.agentJobsKept), with their relays (ON DELETE CASCADE).

CREATE INDEX agent_jobs_target_id ON agent_jobs (target_id);

---- create above / drop below ----

DROP INDEX agent_jobs_target_id;
