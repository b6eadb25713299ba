-- Runs, the graph as run, stages, their loss curves, every probe item and every decision.
CREATE TABLE graph_snapshots (
    graph_hash  VARCHAR PRIMARY KEY,          -- sha256 of the YAML bytes
    curriculum  VARCHAR NOT NULL,
    path        VARCHAR NOT NULL,
    yaml_text   VARCHAR NOT NULL,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE runs (
    run_id      VARCHAR PRIMARY KEY,
    curriculum  VARCHAR NOT NULL,
    graph_hash  VARCHAR NOT NULL,
    policy      VARCHAR NOT NULL,
    seed        INTEGER NOT NULL,
    base_model  VARCHAR NOT NULL,
    status      VARCHAR NOT NULL,             -- running | completed | failed
    config      JSON,
    started_at  TIMESTAMP NOT NULL DEFAULT current_timestamp,
    finished_at TIMESTAMP
);

CREATE TABLE stages (
    run_id       VARCHAR NOT NULL,
    stage        INTEGER NOT NULL,            -- 1, 2, ...; stage 0 is the base model (baseline probes)
    node_id      VARCHAR NOT NULL,            -- the node trained; '*' for a flat stage on all nodes
    attempt      INTEGER NOT NULL,
    kind         VARCHAR NOT NULL,            -- train | rehearse | flat
    parent_stage INTEGER,                     -- the stage whose adapter this one continued; NULL = base
    adapter_path VARCHAR,
    status       VARCHAR NOT NULL,            -- done | discarded | failed
    steps        INTEGER,
    tokens       BIGINT,
    seconds      DOUBLE,
    device       VARCHAR,
    train_loss   DOUBLE,                      -- mean loss of the last epoch
    started_at   TIMESTAMP,
    finished_at  TIMESTAMP,
    PRIMARY KEY (run_id, stage)
);

CREATE TABLE train_steps (
    run_id   VARCHAR NOT NULL,
    stage    INTEGER NOT NULL,
    step     INTEGER NOT NULL,
    loss     DOUBLE NOT NULL,
    lr       DOUBLE,
    tokens   INTEGER,
    seconds  DOUBLE,
    PRIMARY KEY (run_id, stage, step)
);

CREATE TABLE probe_results (
    run_id      VARCHAR NOT NULL,
    stage       INTEGER NOT NULL,             -- 0 = baseline before any training
    node_id     VARCHAR NOT NULL,
    probe_kind  VARCHAR NOT NULL,             -- paraphrase | transfer | lmeval
    probe_index INTEGER NOT NULL,             -- which of the node's probes
    item        INTEGER NOT NULL,             -- line of the item in its JSONL file
    prompt      VARCHAR,
    output      VARCHAR,
    reference   VARCHAR,
    score       DOUBLE NOT NULL,              -- the item's combined score in [0, 1]-ish
    sim         DOUBLE,                       -- paraphrase: cosine similarity to the reference
    novelty     DOUBLE,                       -- paraphrase: edit distance to the training answers
    copied      BOOLEAN,                      -- paraphrase: parroted a training answer
    logprob     DOUBLE,                       -- choice items: normalised log-likelihood of the pick
    passed      BOOLEAN NOT NULL,
    tags        JSON,
    PRIMARY KEY (run_id, stage, node_id, probe_index, item)
);

CREATE TABLE decisions (
    run_id       VARCHAR NOT NULL,
    seq          INTEGER NOT NULL,
    stage        INTEGER,
    node_id      VARCHAR,
    action       VARCHAR NOT NULL,            -- train | pass | retry | branch | back-off | rehearse | skip
    attempt      INTEGER,
    score_before DOUBLE,
    score_after  DOUBLE,
    gate         DOUBLE,
    signals      JSON,
    reason       VARCHAR NOT NULL,
    decided_at   TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (run_id, seq)
);
