"""Exports that other tools read: the records of a run as pytest-benchmark JSON
(``pytest_benchmark``) and energy as a CodeCarbon ``emissions.csv`` (``codecarbon_csv``).

``selection`` picks the records (the newest ``ok`` record per key, smoke records left out) and
writes the output file; each format module turns records into its tool's schema.
"""
