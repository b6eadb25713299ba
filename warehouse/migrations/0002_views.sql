-- R[stage, node]: a node's mean probe score after each stage (stage 0 = baseline).
CREATE VIEW mastery_matrix AS
SELECT run_id, stage, node_id,
       avg(score)                AS score,
       avg(passed::INTEGER)      AS pass_rate,
       count(*)                  AS n_items
FROM probe_results
GROUP BY run_id, stage, node_id;

-- Forgetting per node: its score right after its last training stage vs. every later stage.
-- bwt < 0 means later stages erased some of it; max_drop is the worst dip on the way.
CREATE VIEW forgetting AS
WITH trained AS (
    SELECT m.run_id, m.node_id, max(s.stage) AS trained_stage
    FROM (SELECT DISTINCT run_id, node_id FROM probe_results) m
    JOIN stages s ON s.run_id = m.run_id AND s.status = 'done' AND (s.node_id = m.node_id OR s.node_id = '*')
    GROUP BY m.run_id, m.node_id
), after AS (
    SELECT t.run_id, t.node_id, t.trained_stage, m.stage, m.score
    FROM trained t JOIN mastery_matrix m ON m.run_id = t.run_id AND m.node_id = t.node_id
    WHERE m.stage >= t.trained_stage
)
SELECT run_id, node_id, trained_stage,
       arg_min(score, stage)                          AS score_after_training,
       max(stage)                                     AS final_stage,
       arg_max(score, stage)                          AS final_score,
       arg_max(score, stage) - arg_min(score, stage)  AS bwt,
       arg_min(score, stage) - min(score)             AS max_drop
FROM after
GROUP BY run_id, node_id, trained_stage;

-- Each stage's adapter and the chain of stages it descends from (root first).
CREATE VIEW adapter_lineage AS
WITH RECURSIVE chain(run_id, stage, ancestor, depth, path) AS (
    SELECT run_id, stage, parent_stage, 0, [node_id] FROM stages
    UNION ALL
    SELECT c.run_id, c.stage, s.parent_stage, c.depth + 1, list_prepend(s.node_id, c.path)
    FROM chain c JOIN stages s ON s.run_id = c.run_id AND s.stage = c.ancestor
)
SELECT s.run_id, s.stage, s.node_id, s.attempt, s.status, s.adapter_path,
       s.parent_stage, p.adapter_path AS parent_adapter, c.depth, c.path AS lineage
FROM stages s
JOIN chain c ON c.run_id = s.run_id AND c.stage = s.stage AND c.ancestor IS NULL
LEFT JOIN stages p ON p.run_id = s.run_id AND p.stage = s.parent_stage;
