"""Test helpers shared by several test modules (not fixtures: import them explicitly)."""
