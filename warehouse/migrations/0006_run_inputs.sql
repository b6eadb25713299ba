-- Runs that survive real life: how a run ended, and the data it was made from.
-- runs.status: running | completed | failed (error says why) | interrupted (found dead at resume;
-- `interruptions` counts them, and the resumed run is `running` again).
ALTER TABLE runs ADD COLUMN error VARCHAR;
ALTER TABLE runs ADD COLUMN interruptions INTEGER DEFAULT 0;

-- Every data and probe file a run read, by its path relative to the YAML, with its sha256;
-- the text once per distinct content (as graph_snapshots holds the YAML's).
CREATE TABLE file_snapshots (
    sha256      VARCHAR PRIMARY KEY,
    text        VARCHAR NOT NULL,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE run_files (
    run_id  VARCHAR NOT NULL,
    path    VARCHAR NOT NULL,             -- as the YAML names it (relative to the YAML)
    sha256  VARCHAR NOT NULL,
    PRIMARY KEY (run_id, path)
);
