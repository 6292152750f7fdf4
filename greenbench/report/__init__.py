"""Reports built from stored records: comparison tables (later: leaderboards, HTML, plots)."""
