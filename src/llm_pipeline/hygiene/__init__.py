"""Text hygiene shared by ingest and the data contracts: readers, PII, near-duplicates."""
