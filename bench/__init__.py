"""Benchmarks and the stitching quality report (synthetic B2B journeys with ground truth)."""
