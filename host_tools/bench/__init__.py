"""Stage 6, results -> report: accuracy and device benchmarks."""
