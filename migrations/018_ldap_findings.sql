-- SPDX-License-Identifier: Apache-2.0
-- Certificates read from LDAP stores (discovered_certs) get the monitor's
-- expiry findings and alerts (issue 23): each gets a mon_targets row of
-- its own (discovered_cert, named by its DN, port 0), which the central
-- monitor never leases; the monitor's maintenance judges its expiry with
-- the configured thresholds and writes it back like a probe. No probe is
-- made. The row is closed (finding resolved) when the certificate is gone
-- from its store or renewed.

ALTER TABLE mon_targets ADD COLUMN discovered_cert bigint UNIQUE REFERENCES discovered_certs (id) ON DELETE CASCADE;
DROP INDEX mon_targets_public;
ALTER TABLE mon_targets DROP COLUMN public;
ALTER TABLE mon_targets ADD COLUMN public boolean
    GENERATED ALWAYS AS (site_target IS NULL AND agent IS NULL AND discovered_cert IS NULL) STORED;
CREATE UNIQUE INDEX mon_targets_public ON mon_targets (name, port) WHERE public;
COMMENT ON COLUMN mon_targets.discovered_cert IS 'a certificate read from an LDAP store: its expiry finding, never probed';

---- create above / drop below ----

DELETE FROM mon_targets WHERE discovered_cert IS NOT NULL;
DROP INDEX mon_targets_public;
ALTER TABLE mon_targets DROP COLUMN public;
ALTER TABLE mon_targets DROP COLUMN discovered_cert;
ALTER TABLE mon_targets ADD COLUMN public boolean GENERATED ALWAYS AS (site_target IS NULL AND agent IS NULL) STORED;
CREATE UNIQUE INDEX mon_targets_public ON mon_targets (name, port) WHERE public;
