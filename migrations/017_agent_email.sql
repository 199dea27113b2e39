-- SPDX-License-Identifier: Apache-2.0
-- An agent claimed by e-mail (issue 22, `keychest-agent run --email E`):
-- the agent asks, with its own key, to be given to the account of E; the
-- service mails E the agent's summary and an agent_approve link, whose
-- token names the agent. Only the POST of that link gives the agent to
-- the account (and confirms the account if it was not yet).

ALTER TABLE tokens ADD COLUMN agent_id bigint REFERENCES agents (id) ON DELETE CASCADE;
CREATE INDEX tokens_agent_id ON tokens (agent_id) WHERE agent_id IS NOT NULL;
COMMENT ON COLUMN tokens.agent_id IS 'agent_approve: the agent the link gives to the account';
ALTER TABLE tokens DROP CONSTRAINT tokens_action_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_action_check
    CHECK (action IN ('confirm', 'block', 'revoke', 'alerts_off', 'digest_off', 'approve', 'agent_approve'));
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check CHECK (kind IN ('confirm', 'new_key', 'alert', 'digest', 'agent_claim'));

---- create above / drop below ----

DELETE FROM outbox WHERE kind = 'agent_claim';
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check CHECK (kind IN ('confirm', 'new_key', 'alert', 'digest'));
DELETE FROM tokens WHERE action = 'agent_approve';
ALTER TABLE tokens DROP CONSTRAINT tokens_action_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_action_check
    CHECK (action IN ('confirm', 'block', 'revoke', 'alerts_off', 'digest_off', 'approve'));
DROP INDEX tokens_agent_id;
ALTER TABLE tokens DROP COLUMN agent_id;
