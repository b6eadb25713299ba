-- Signals that carry their noise: every choice option's numbers, both accuracies, the paraphrase's
-- key facts and reference likelihood, and each node's score with its n and interval.
ALTER TABLE probe_results ADD COLUMN facts DOUBLE;               -- paraphrase: share of key facts stated
ALTER TABLE probe_results ADD COLUMN ref_logprob DOUBLE;         -- paraphrase: mean log p(reference | prompt)
ALTER TABLE probe_results ADD COLUMN options JSON;               -- choice: [{text, logprob, tokens, prior_logprob}]
ALTER TABLE probe_results ADD COLUMN raw_correct BOOLEAN;        -- choice: right by per-token log-likelihood
ALTER TABLE probe_results ADD COLUMN calibrated_correct BOOLEAN; -- choice: right by log p(option | question) - log p(option | N/A)
ALTER TABLE probe_results ADD COLUMN scoring VARCHAR;            -- choice: calibrated | raw (what `score` uses)

ALTER TABLE decisions ADD COLUMN n_items INTEGER;
ALTER TABLE decisions ADD COLUMN ci_low DOUBLE;
ALTER TABLE decisions ADD COLUMN ci_high DOUBLE;

-- A node's score at a stage as the run saw it: the items it drew, and the one-sided bounds at the gate's confidence.
CREATE TABLE node_scores (
    run_id      VARCHAR NOT NULL,
    stage       INTEGER NOT NULL,
    node_id     VARCHAR NOT NULL,
    score       DOUBLE NOT NULL,
    n_items     INTEGER NOT NULL,
    pool        INTEGER NOT NULL,      -- items the node's probes hold in all
    ci_low      DOUBLE NOT NULL,
    ci_high     DOUBLE NOT NULL,
    method      VARCHAR NOT NULL,      -- wilson (right/wrong items) | t (continuous scores)
    confidence  DOUBLE NOT NULL,
    gate        DOUBLE,
    PRIMARY KEY (run_id, stage, node_id)
);
