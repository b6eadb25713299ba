-- Runs continued from another (`curriculum run --from`): the parent, and every run's file snapshot, so a
-- later run can tell which data and probe files changed since.
ALTER TABLE runs ADD COLUMN parent_run VARCHAR;   -- the run whose end state this one started from; NULL: the base model

CREATE TABLE run_files (
    run_id   VARCHAR NOT NULL,
    node_id  VARCHAR NOT NULL,
    file_key VARCHAR NOT NULL,                    -- data | probes[i]
    path     VARCHAR NOT NULL,                    -- as the YAML writes it (relative to the YAML)
    sha256   VARCHAR,                             -- of the file's bytes when the run started
    PRIMARY KEY (run_id, node_id, file_key)
);

-- A --from run's stages may continue stage 0, the parent's adapter copied into the run's folder (no stage
-- row): the chain ends there as it ends at the base model.
DROP VIEW adapter_lineage;
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
JOIN chain c ON c.run_id = s.run_id AND c.stage = s.stage AND coalesce(c.ancestor, 0) = 0
LEFT JOIN stages p ON p.run_id = s.run_id AND p.stage = s.parent_stage;
