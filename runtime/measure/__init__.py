"""Measurement: benchmarks (measured host figures + MODELLED Ultra96 figures) and verification."""
