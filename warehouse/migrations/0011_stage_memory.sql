-- Where and how a stage trained, as its stage.json says: the numeric type, the micro-batch it ended with (halved on
-- each out-of-memory), the gradient accumulation that kept its examples per optimizer step, and the times it ran out.

ALTER TABLE stages ADD COLUMN dtype VARCHAR;
ALTER TABLE stages ADD COLUMN micro_batch INTEGER;
ALTER TABLE stages ADD COLUMN grad_accum INTEGER;
ALTER TABLE stages ADD COLUMN ooms INTEGER;
