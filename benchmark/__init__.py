"""Data, Avalanche stream, training and the benchmark commands.

avalanche-lib 0.6.0 imports qpsolvers, which warns at import time that no QP solver is
installed; no strategy here uses one (only GEM-style strategies do), so the warning is
silenced before anything imports Avalanche.
"""

import warnings

warnings.filterwarnings("ignore", message="no QP solver found", category=UserWarning)
