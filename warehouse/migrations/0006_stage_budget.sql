-- What a stage was allowed: its step budget and one round's length. A failed gate is retried only while
-- the node has at least one more round left; the policy reads both on replay as it did live.
ALTER TABLE stages ADD COLUMN budget INTEGER;        -- optimizer steps the stage could spend
ALTER TABLE stages ADD COLUMN round_steps INTEGER;   -- optimizer steps between two checks
