"""The mapping model: the VAE that maps any image to the canonical one, its loss and its metrics.

- :mod:`.vae`: the convolutional VAE (Xie et al., Fig. 3), saving and loading.
- :mod:`.loss`: Eq. 1 with KL annealing and foreground weighting, as an Avalanche criterion.
- :mod:`.task_metrics`: where the target lands in a reconstruction, and the arm's overlap.
- :mod:`.metrics`: MSE, auxiliary and task metrics as Avalanche ``PluginMetric`` s.
- :mod:`.fastpath`: precision, memory format and compilation of the VAE.
"""
