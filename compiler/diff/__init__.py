"""Diffs: what a change does to rendered artifacts (review) and, later, to live state."""
