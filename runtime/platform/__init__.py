"""Overlay manifests, overlay loading (board or simulated PL), the simulated PL and its buffers."""
