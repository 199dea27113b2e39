-- SPDX-License-Identifier: Apache-2.0
-- PLACEHOLDER, no change: migration 019 belongs to branch relay-perf,
-- whose file of this very name replaces this one when it is merged
-- (tern wants the numbers without a gap, and 020 follows).
SELECT 1;

---- create above / drop below ----

SELECT 1;
