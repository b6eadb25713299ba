-- Check items steer a run, exam items judge it. Every probe row says which it was: 'check' (read by the run's
-- decisions), 'exam' (read only for the verdict, on the end state) or 'unsplit' (a node too
-- small to split, and every row written before the split existed: its items both steered and judged the run).
-- The side is part of the key: a probe's own exam file numbers its lines from 1, as its items file does.
CREATE TABLE probe_results_split (
    run_id      VARCHAR NOT NULL,
    stage       INTEGER NOT NULL,
    node_id     VARCHAR NOT NULL,
    split       VARCHAR NOT NULL DEFAULT 'unsplit',   -- check | exam | unsplit
    probe_kind  VARCHAR NOT NULL,
    probe_index INTEGER NOT NULL,
    item        INTEGER NOT NULL,
    prompt      VARCHAR,
    output      VARCHAR,
    reference   VARCHAR,
    score       DOUBLE NOT NULL,
    sim         DOUBLE,
    novelty     DOUBLE,
    copied      BOOLEAN,
    logprob     DOUBLE,
    passed      BOOLEAN NOT NULL,
    tags        JSON,
    facts       DOUBLE,
    ref_logprob DOUBLE,
    options     JSON,
    raw_correct BOOLEAN,
    calibrated_correct BOOLEAN,
    scoring     VARCHAR,
    PRIMARY KEY (run_id, stage, node_id, split, probe_index, item)
);
INSERT INTO probe_results_split (run_id, stage, node_id, split, probe_kind, probe_index, item, prompt, output, reference,
                                 score, sim, novelty, copied, logprob, passed, tags, facts, ref_logprob, options,
                                 raw_correct, calibrated_correct, scoring)
SELECT run_id, stage, node_id, 'unsplit', probe_kind, probe_index, item, prompt, output, reference, score, sim, novelty,
       copied, logprob, passed, tags, facts, ref_logprob, options, raw_correct, calibrated_correct, scoring
FROM probe_results;
DROP TABLE probe_results;
ALTER TABLE probe_results_split RENAME TO probe_results;

-- A node's exam score where it was taken (the final sweep): all its exam items, a two-sided
-- interval at `confidence`. The verdict a comparison reads; no decision of the run ever does.
CREATE TABLE exam_scores (
    run_id      VARCHAR NOT NULL,
    stage       INTEGER NOT NULL,
    node_id     VARCHAR NOT NULL,
    score       DOUBLE NOT NULL,
    n_items     INTEGER NOT NULL,
    ci_low      DOUBLE NOT NULL,
    ci_high     DOUBLE NOT NULL,
    method      VARCHAR NOT NULL,      -- wilson (right/wrong items) | t (continuous scores)
    confidence  DOUBLE NOT NULL,       -- two-sided
    PRIMARY KEY (run_id, stage, node_id)
);

-- R[stage, node] is what the run saw: check (and unsplit) items only.
CREATE OR REPLACE VIEW mastery_matrix AS
SELECT p.run_id, p.stage, p.node_id,
       avg(p.score)                                    AS score,
       avg(p.passed::INTEGER)                          AS pass_rate,
       count(*)                                        AS n_items,
       coalesce(any_value(s.status), 'base')           AS adapter_status,
       (p.stage = 0 OR any_value(s.status) = 'done')   AS accepted
FROM probe_results p LEFT JOIN stages s ON s.run_id = p.run_id AND s.stage = p.stage
WHERE p.split <> 'exam'
GROUP BY p.run_id, p.stage, p.node_id;

-- Each node's end state: the policy's last status and last accepted check score, and its verdict: the exam score
-- on the adapter the run ends with (NULL for an unsplit node, whose `score` is its verdict, marked unsplit).
CREATE OR REPLACE VIEW final_status AS
WITH last AS (
    SELECT run_id, node_id, arg_max(status, stage) AS status, arg_max(attempts, stage) AS attempts,
           arg_max(spent_steps, stage) AS spent_steps, arg_max(rehearsals, stage) AS rehearsals
    FROM node_status GROUP BY run_id, node_id
), scored AS (
    SELECT m.run_id, m.node_id, arg_max(m.score, m.stage) AS score, max(m.stage) AS scored_at
    FROM mastery_matrix m WHERE m.accepted GROUP BY m.run_id, m.node_id
), exam AS (
    SELECT run_id, node_id, arg_max(score, stage) AS exam_score, arg_max(n_items, stage) AS exam_n,
           max(stage) AS exam_at
    FROM exam_scores GROUP BY run_id, node_id
)
SELECT l.*, s.score, s.scored_at, e.exam_score, e.exam_n, e.exam_at,
       CASE WHEN e.exam_score IS NULL THEN 'unsplit' ELSE 'exam' END AS verdict_split
FROM last l LEFT JOIN scored s USING (run_id, node_id) LEFT JOIN exam e USING (run_id, node_id);
