"""Training code (PyTorch, optional extra) that produces the shipped models."""
