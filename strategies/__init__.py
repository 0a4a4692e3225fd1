"""Continual-learning strategies for the VAE, each one builder function found by name."""
