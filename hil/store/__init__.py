"""The results store: measurements with their provenance in SQLite, and their text forms."""
