"""Evaluation measures: statistics, similarity, judged metrics, canary exposure, reports."""
