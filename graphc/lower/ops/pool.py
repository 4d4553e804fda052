"""Lowerings of max/avg pooling and their gradients."""
