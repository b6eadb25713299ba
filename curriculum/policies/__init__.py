"""What to train next, from the evidence: the run's state and the decisions it records (states, runstate), the
policies (gated, mix, flat, the choosers of order), the registry that names them (registry), the verdicts at the
end (verdicts), the probe draws (draws) and forgetting (drift). A new policy is a module here and a line in the
registry. Imports graph, stats, models and loading.
"""
