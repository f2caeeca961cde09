"""The process pools the search runs its parallel work on."""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor


def _one_torch_thread() -> None:
    import torch

    torch.set_num_threads(1)


def process_pool(workers: int) -> ProcessPoolExecutor:
    """`workers` processes, spawned rather than forked (the parent may hold torch's threads and an
    open results store), each with one torch thread: the pool fills the cores already, and torch's
    default of one thread per core in every worker makes them wait on each other."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_one_torch_thread)
