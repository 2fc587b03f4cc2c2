"""Command-line tools: champion moves, the review page, the team server, the sample data.

Nothing in the pipeline imports from here: tools use the stages and shared packages.
"""
