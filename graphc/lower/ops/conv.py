"""Lowerings of conv2d and its gradients: im2col into scratch memory, then one GEMM."""
