-- SPDX-License-Identifier: Apache-2.0
-- Claim mails (confirm, new_key) are worded when they are sent, like
-- alerts: the claim's transaction stores what the mail reports (the key's
-- prefix, the client's address, when, what the account holds, when the
-- links expire) and leaves subject and body empty. Rows queued before
-- this migration keep their text.

ALTER TABLE outbox ADD COLUMN claim jsonb;
COMMENT ON COLUMN outbox.claim IS 'a claim mail''s facts, worded when it is sent (no secrets)';

---- create above / drop below ----

ALTER TABLE outbox DROP COLUMN claim;
