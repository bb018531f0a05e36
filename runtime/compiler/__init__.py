"""Model compilers and compiled-model files."""
