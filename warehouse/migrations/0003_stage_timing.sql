-- Wall time of each stage's training task and probe sweep, and of the baseline sweep:
-- what remains of a run's wall time is orchestration overhead (Prefect + warehouse).
ALTER TABLE stages ADD COLUMN train_wall_s DOUBLE;
ALTER TABLE stages ADD COLUMN probe_s DOUBLE;
ALTER TABLE runs ADD COLUMN baseline_probe_s DOUBLE;
