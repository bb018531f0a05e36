"""Vision helpers for the detector runtime (numpy + OpenCV only)."""
