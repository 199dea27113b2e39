-- SPDX-License-Identifier: Apache-2.0
-- Mail that is sent, or given up, keeps no secret: the raw link tokens of
-- a pending mail live in link_tokens (its body holds only stand-ins) and
-- are dropped when the mail is sent or fails for good. failed_at marks a
-- mail given up (a permanent SMTP rejection, or KEYCHEST_MAIL_GIVE_UP
-- passed); it is not tried again.

ALTER TABLE outbox ADD COLUMN link_tokens jsonb;
ALTER TABLE outbox ADD COLUMN failed_at timestamptz;

DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox (next_try_at) WHERE sent_at IS NULL AND failed_at IS NULL;
CREATE INDEX outbox_failed ON outbox (failed_at) WHERE failed_at IS NOT NULL;

-- Mails sent before this migration carried their tokens in the body.
UPDATE outbox SET body = regexp_replace(body, '/(confirm|block|revoke)/[A-Za-z0-9_-]+', '/\1/(used)', 'g')
WHERE sent_at IS NOT NULL;

---- create above / drop below ----

DROP INDEX outbox_failed;
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox (next_try_at) WHERE sent_at IS NULL;
ALTER TABLE outbox DROP COLUMN failed_at;
ALTER TABLE outbox DROP COLUMN link_tokens;
