"""Command-line tools: champion moves, the review page, the team server, the sample data.

Nothing in the pipeline imports from here: tools use the stages and shared packages. The folder
is ``tools``, not ``cli``: Kedro loads ``<package>.cli`` as the project's own click commands, and
``kedro run`` fails with "Cannot load commands from llm_pipeline.cli" when that is a package of
tools (tried).
"""
