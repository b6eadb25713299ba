"""Probe kinds and their scoring: paraphrase, domain transfer, lm-eval tasks.

Every probe returns one `ItemResult` per item (stored as a warehouse row) and the node's
aggregate is their mean score.
"""
