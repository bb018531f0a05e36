"""Binarized CNN for the BNN overlay: training, exact folding, integer forward (see hls_src/bnn/FORMAT.md)."""
