"""Helpers every part of dse shares: atomic writes, the user-error type, command-line flag types, progress
bars and units."""
