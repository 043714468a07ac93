"""Timing harness, statistics, output comparison against the reference, and input generation."""
