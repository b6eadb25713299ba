-- Runs that survive real life: how a run ended, and the data it was made from.
-- runs.status: running | completed | failed (error says why) | interrupted (found dead at resume;
-- `interruptions` counts them, and the resumed run is `running` again).
ALTER TABLE runs ADD COLUMN error VARCHAR;
ALTER TABLE runs ADD COLUMN interruptions INTEGER DEFAULT 0;

-- The text of every data and probe file a run read, once per distinct content (as graph_snapshots
-- holds the YAML's), keyed by the sha256 that run_files records.
CREATE TABLE file_snapshots (
    sha256      VARCHAR PRIMARY KEY,
    text        VARCHAR NOT NULL,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);
-- Which file each run read (per node, with its sha256) is `run_files`, in 0008.
