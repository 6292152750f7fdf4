"""CLI verbs that grew beyond a few lines, one module each (asv's ``commands/`` layout)."""
