"""The data stage: what to render, rendering it, caching it, and the Avalanche stream over it.

- :mod:`.spec`: :class:`~.spec.DataSpec`, everything that determines the bytes of a data set.
- :mod:`.generate`: rendering in worker processes (inputs, canonical targets, aux, masks).
- :mod:`.cache`: the on-disk cache keyed by the spec.
- :mod:`.stream`: the Avalanche benchmark, one experience per task.
- :mod:`.preview`: a picture of the data (the paper's Fig. 2).
- ``python -m benchmark.data``: pre-generate or check the cache (:mod:`.__main__`).
"""
