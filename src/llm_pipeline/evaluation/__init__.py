"""Evaluation measures shared by stages: paired statistics (evaluate, register) and answer
similarity (evaluate, retrieval). The judge, canary, likelihood and report live in the evaluate
stage (``pipelines/evaluate/``), the only one that uses them."""
