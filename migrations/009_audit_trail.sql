-- SPDX-License-Identifier: Apache-2.0
-- An add is audited by its own domains row (created_at, created_ip, its
-- key): the hot path writes no audit row, and the audit table's indexes
-- take no insert per add. The view audit_trail shows the audit table with
-- the stored domains as "domain.add" events; a removal's audit entry keeps
-- when and from where the domain was added (detail added_at, added_ip).

CREATE VIEW audit_trail AS
SELECT at, remote_ip, action, key_prefix, detail FROM audit
UNION ALL
SELECT d.created_at, d.created_ip, 'domain.add', k.key_prefix,
       jsonb_build_object('domain', d.name, 'port', d.port)
FROM domains d JOIN api_keys k ON k.id = d.api_key_id;

-- The audit rows of adds whose domain is still stored: the view shows them.
DELETE FROM audit a USING domains d JOIN api_keys k ON k.id = d.api_key_id
WHERE a.action = 'domain.add' AND a.key_prefix = k.key_prefix
  AND a.detail->>'domain' = d.name AND (a.detail->>'port')::int = d.port;

---- create above / drop below ----

INSERT INTO audit (at, remote_ip, action, key_prefix, detail)
SELECT d.created_at, d.created_ip, 'domain.add', k.key_prefix, jsonb_build_object('domain', d.name, 'port', d.port)
FROM domains d JOIN api_keys k ON k.id = d.api_key_id;
DROP VIEW audit_trail;
