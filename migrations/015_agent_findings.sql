-- SPDX-License-Identifier: Apache-2.0
-- Targets behind a site get the monitor's findings and alerts (issue 22):
-- each gets a mon_targets row of its own (site_target), which the central
-- monitor never leases; a relayed probe is judged by the monitor's judge
-- and written back through the same path as a public probe. Each claimed
-- agent gets a row too (agent), which carries its agent_silent finding.
-- A public target is one with neither: (name, port) is unique among those
-- only, since a private name may mean another host in each site.

ALTER TABLE mon_targets ADD COLUMN site_target bigint UNIQUE REFERENCES agent_targets (id) ON DELETE CASCADE;
ALTER TABLE mon_targets ADD COLUMN agent bigint UNIQUE REFERENCES agents (id) ON DELETE CASCADE;
ALTER TABLE mon_targets ADD COLUMN public boolean GENERATED ALWAYS AS (site_target IS NULL AND agent IS NULL) STORED;
ALTER TABLE mon_targets DROP CONSTRAINT mon_targets_name_port_key;
CREATE UNIQUE INDEX mon_targets_public ON mon_targets (name, port) WHERE public;
COMMENT ON COLUMN mon_targets.site_target IS 'a target behind a site: probed only through its agents, never leased by the central monitor';
COMMENT ON COLUMN mon_targets.agent IS 'an agent''s own row: its agent_silent finding';

INSERT INTO mon_targets (name, port, site_target)
SELECT name, port, id FROM agent_targets;

ALTER TABLE mon_findings DROP CONSTRAINT mon_findings_kind_check;
ALTER TABLE mon_findings ADD CONSTRAINT mon_findings_kind_check CHECK (kind IN ('expiry', 'untrusted',
    'name_mismatch', 'revoked', 'unreachable', 'stale_endpoint', 'weak',
    'acme_invalid', 'acme_rate_limited', 'acme_bad_nonce', 'acme_account_failing', 'acme_not_renewing',
    'agent_silent'));

---- create above / drop below ----

DELETE FROM mon_findings WHERE kind = 'agent_silent';
ALTER TABLE mon_findings DROP CONSTRAINT mon_findings_kind_check;
ALTER TABLE mon_findings ADD CONSTRAINT mon_findings_kind_check CHECK (kind IN ('expiry', 'untrusted',
    'name_mismatch', 'revoked', 'unreachable', 'stale_endpoint', 'weak',
    'acme_invalid', 'acme_rate_limited', 'acme_bad_nonce', 'acme_account_failing', 'acme_not_renewing'));
DELETE FROM mon_targets WHERE NOT public;
DROP INDEX mon_targets_public;
ALTER TABLE mon_targets DROP COLUMN public;
ALTER TABLE mon_targets DROP COLUMN agent;
ALTER TABLE mon_targets DROP COLUMN site_target;
ALTER TABLE mon_targets ADD CONSTRAINT mon_targets_name_port_key UNIQUE (name, port);
