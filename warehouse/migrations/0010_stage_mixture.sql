-- What a mix stage was fed: one row per stage and node of its mixture (policy: mix).

CREATE TABLE stage_mixture (
    run_id    VARCHAR NOT NULL,
    stage     INTEGER NOT NULL,
    node_id   VARCHAR NOT NULL,
    role      VARCHAR NOT NULL,   -- frontier (ready, weighted by its gap) | replay (held: mastered, below-gate, forgotten)
    weight    DOUBLE NOT NULL,    -- the node's share of the stage's examples (a stage's weights add up to 1)
    examples  INTEGER NOT NULL,   -- examples drawn from the node (a stage's add up to the examples it trained on)
    tokens    BIGINT NOT NULL,    -- their tokens, prompt included, once each
    PRIMARY KEY (run_id, stage, node_id)
);

-- A mix stage trains every node in its mixture: forgetting counts it as the node's training stage.
DROP VIEW forgetting;
CREATE VIEW forgetting AS
WITH trained AS (
    SELECT m.run_id, m.node_id, max(s.stage) AS trained_stage
    FROM (SELECT DISTINCT run_id, node_id FROM probe_results) m
    JOIN stages s ON s.run_id = m.run_id AND s.status = 'done' AND s.kind <> 'final'
                 AND (s.node_id = m.node_id OR s.kind = 'flat'
                      OR (s.kind = 'mix' AND EXISTS (SELECT 1 FROM stage_mixture x WHERE x.run_id = s.run_id
                                                     AND x.stage = s.stage AND x.node_id = m.node_id
                                                     AND x.role = 'frontier')))
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
