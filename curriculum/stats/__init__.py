"""The statistics decisions and verdicts are made with: scores with their intervals, paired drops, which items a
decision may read (evidence), and the power of a paired comparison (power). Imports graph only.
"""
