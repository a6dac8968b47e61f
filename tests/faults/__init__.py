"""Fault and bad-input suite (issue #9): see docs/faults.md."""
