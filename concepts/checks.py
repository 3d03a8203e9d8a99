"""System checks for the concept content files (filled in by the foundation issue)."""
