"""Thread control of the Gaussian mixture's E-step: how many blocks make a thread worth
starting, and BLAS limited to one thread while the kernels run in our own threads
(:func:`latent_em.compiled.blas.single_threaded_blas`, shared with the discrete
mixtures)."""

from __future__ import annotations

from ...compiled.blas import single_threaded_blas

__all__ = ["MIN_BLOCKS_PER_THREAD", "single_threaded_blas"]

#: a thread gets at least this many blocks, or the threads' start-up is not worth it
MIN_BLOCKS_PER_THREAD = 4
