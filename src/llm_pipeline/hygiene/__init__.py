"""Text hygiene shared by ingest and validate (the data contracts): records, PII,
near-duplicates and the process pool they run in; and the readers, ingest's only, kept here so
that importing them costs no stage (their import cost is tested alone), with ``raw_files``, which
decides for the raw-folder dataset and ingest which files may be opened at all. Cleaning lives
in ``pipelines/ingest/``."""
