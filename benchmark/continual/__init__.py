"""Continual training of the VAE on the stream (the strategies themselves live in ``strategies/``).

- :mod:`.config`: :class:`~.config.TrainConfig` and :class:`~.config.RunConfig`.
- :mod:`.session`: one model, criterion, loggers and Avalanche strategy, and its state.
- :mod:`.runner`: the schedule of a run, the shared Task-0 model, checkpoints and resume.
- :mod:`.results`: the results matrices and ``results.json``.
- :mod:`.plugins`: guards (non-finite loss, gradient clipping); :mod:`.checkpoint`; :mod:`.loggers`.
"""
