"""Stage 2 of the flow, the run: walk a suite's variant DAG through an executor and store one
record per variant.

``runner`` orders the work and resumes from the store; ``jobs`` are the typed, versioned
messages that cross to a worker process (``worker``) and back; ``records`` turns what the
workers measured into a record's metrics; ``progress`` shows it; ``lock`` keeps two runs out of
one work folder.
"""
