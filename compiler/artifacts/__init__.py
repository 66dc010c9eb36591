"""Builders: each turns the resolved site into one artifact, as plain data or text."""
