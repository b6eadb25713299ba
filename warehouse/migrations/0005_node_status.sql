-- One truth for node status, stages sized by mastery, and views that read the run's actual state.

-- The policy's status of every node after every stage (stage 0: after the baseline): reports read it,
-- never re-derive it from decisions.
CREATE TABLE node_status (
    run_id      VARCHAR NOT NULL,
    stage       INTEGER NOT NULL,
    node_id     VARCHAR NOT NULL,
    status      VARCHAR NOT NULL,      -- locked | mastered | trained | forgotten | failed | skipped | dormant | waiting
    attempts    INTEGER NOT NULL,
    spent_steps INTEGER NOT NULL,      -- optimizer steps of the node's current chain of attempts
    rehearsals  INTEGER NOT NULL,
    PRIMARY KEY (run_id, stage, node_id)
);

-- A stage trains in rounds and stops on its check: how many rounds, why it stopped, and every check.
-- Stage status: done (the run went on from it) | retried (its retry continued it) | discarded | failed.
-- Kind 'final': no training, the end state probed on all items.
ALTER TABLE stages ADD COLUMN rounds INTEGER;
ALTER TABLE stages ADD COLUMN stop_reason VARCHAR;   -- gate-met | plateau | budget (NULL: fixed length)
ALTER TABLE stages ADD COLUMN checks JSON;           -- [{round, step, score, verdict, n}]
ALTER TABLE stages ADD COLUMN check_s DOUBLE;        -- of `seconds`, the time its checks took (probing, not training)

-- R[stage, node]. `accepted`: probed on the base model or on an adapter the run went on from; scores
-- probed on retried or discarded adapters stay queryable, marked by adapter_status.
DROP VIEW forgetting;
DROP VIEW mastery_matrix;
CREATE VIEW mastery_matrix AS
SELECT p.run_id, p.stage, p.node_id,
       avg(p.score)                                    AS score,
       avg(p.passed::INTEGER)                          AS pass_rate,
       count(*)                                        AS n_items,
       coalesce(any_value(s.status), 'base')           AS adapter_status,
       (p.stage = 0 OR any_value(s.status) = 'done')   AS accepted
FROM probe_results p LEFT JOIN stages s ON s.run_id = p.run_id AND s.stage = p.stage
GROUP BY p.run_id, p.stage, p.node_id;

-- Forgetting per node, on accepted adapters only: its score right after its last kept training stage vs.
-- every later accepted probe. bwt < 0 means later stages erased some of it.
CREATE VIEW forgetting AS
WITH trained AS (
    SELECT m.run_id, m.node_id, max(s.stage) AS trained_stage
    FROM (SELECT DISTINCT run_id, node_id FROM probe_results) m
    JOIN stages s ON s.run_id = m.run_id AND s.status = 'done' AND s.kind <> 'final'
                 AND (s.node_id = m.node_id OR s.kind = 'flat')
    GROUP BY m.run_id, m.node_id
), after AS (
    SELECT t.run_id, t.node_id, t.trained_stage, m.stage, m.score
    FROM trained t JOIN mastery_matrix m ON m.run_id = t.run_id AND m.node_id = t.node_id
    WHERE m.stage >= t.trained_stage AND m.accepted
)
SELECT run_id, node_id, trained_stage,
       arg_min(score, stage)                          AS score_after_training,
       max(stage)                                     AS final_stage,
       arg_max(score, stage)                          AS final_score,
       arg_max(score, stage) - arg_min(score, stage)  AS bwt,
       arg_min(score, stage) - min(score)             AS max_drop
FROM after
GROUP BY run_id, node_id, trained_stage;

-- Each node's end state: the policy's last recorded status, with its last accepted score.
CREATE VIEW final_status AS
WITH last AS (
    SELECT run_id, node_id, arg_max(status, stage) AS status, arg_max(attempts, stage) AS attempts,
           arg_max(spent_steps, stage) AS spent_steps, arg_max(rehearsals, stage) AS rehearsals
    FROM node_status GROUP BY run_id, node_id
), scored AS (
    SELECT m.run_id, m.node_id, arg_max(m.score, m.stage) AS score, max(m.stage) AS scored_at
    FROM mastery_matrix m WHERE m.accepted GROUP BY m.run_id, m.node_id
)
SELECT l.*, s.score, s.scored_at FROM last l LEFT JOIN scored s USING (run_id, node_id);
