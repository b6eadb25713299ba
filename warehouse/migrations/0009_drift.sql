-- Drift of general ability. At baseline, once per run, the base model answers neutral prompts shipped with the
-- product (drift_answers); every stage's adapter then reads those answers back, teacher-forced (drift_items:
-- mean per-token log-likelihood of each answer; stage 0 = the base model). A stage's drift is the mean over
-- prompts of (its log-likelihood - the base's): negative = the adapter finds the base's own answers less likely.
CREATE TABLE drift_answers (
    run_id   VARCHAR NOT NULL,
    item     INTEGER NOT NULL,        -- line of the prompt in probes/data/drift_prompts.jsonl
    prompt   VARCHAR NOT NULL,
    answer   VARCHAR NOT NULL,        -- the base model's greedy answer
    tokens   INTEGER NOT NULL,        -- tokens of the answer scored (0: empty, not scored)
    PRIMARY KEY (run_id, item)
);

CREATE TABLE drift_items (
    run_id   VARCHAR NOT NULL,
    stage    INTEGER NOT NULL,        -- 0 = the base model
    item     INTEGER NOT NULL,
    logprob  DOUBLE NOT NULL,         -- mean per-token log-likelihood of the base's answer on this stage's adapter
    PRIMARY KEY (run_id, stage, item)
);

-- Each stage's drift with its n and 95% t interval over prompts (paired per-prompt differences); the policy
-- reads drift, drift_n and drift_sd on replay as it did live (gate option max_drift).
ALTER TABLE stages ADD COLUMN drift DOUBLE;
ALTER TABLE stages ADD COLUMN drift_n INTEGER;
ALTER TABLE stages ADD COLUMN drift_sd DOUBLE;
ALTER TABLE stages ADD COLUMN drift_low DOUBLE;
ALTER TABLE stages ADD COLUMN drift_high DOUBLE;
ALTER TABLE stages ADD COLUMN drift_s DOUBLE;        -- seconds the stage's drift took (a forward pass, no generation)
ALTER TABLE runs ADD COLUMN drift_baseline_s DOUBLE; -- seconds the base model's answers took (generation, once)

-- Every prompt's difference at every stage, with the prompt and the base's answer.
CREATE VIEW drift_per_prompt AS
SELECT i.run_id, i.stage, i.item, a.prompt, a.answer, a.tokens, i.logprob, b.logprob AS base_logprob,
       i.logprob - b.logprob AS diff
FROM drift_items i
JOIN drift_items b ON b.run_id = i.run_id AND b.stage = 0 AND b.item = i.item
JOIN drift_answers a ON a.run_id = i.run_id AND a.item = i.item
WHERE i.stage > 0;
