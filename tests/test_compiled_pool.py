"""The compiled kernels' persistent thread pool (latent_em.compiled.pool)."""

from __future__ import annotations

import multiprocessing
import sys
import threading
import time

import numpy as np
import pytest

from latent_em.compiled.pool import run_items


def _concurrency(n_threads: int, n_items: int = 24, pause: float = 0.005):
    lock = threading.Lock()
    state = {"now": 0, "most": 0}
    seen: set[int] = set()
    done = np.zeros(n_items, dtype=int)

    def work(i: int) -> None:
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
            seen.add(threading.get_ident())
        time.sleep(pause)
        done[i] += 1
        with lock:
            state["now"] -= 1

    run_items(work, [(i,) for i in range(n_items)], n_threads)
    return state["most"], seen, done


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_every_item_runs_once_and_never_more_threads_than_asked(n_threads):
    most, seen, done = _concurrency(n_threads)
    assert np.all(done == 1)
    assert most <= n_threads
    assert len(seen) <= n_threads
    if n_threads == 1:
        assert seen == {threading.get_ident()}  # the calling thread only


def test_two_threads_are_used_when_asked():
    # 24 items of 5 ms: the pool thread has 120 ms to pick one up
    _, seen, _ = _concurrency(2)
    assert len(seen) == 2


def test_a_later_smaller_request_is_still_limited():
    _concurrency(4)  # grows the pool to 3 workers
    most, seen, _ = _concurrency(2)
    assert most <= 2 and len(seen) <= 2


def test_an_error_in_an_item_reaches_the_caller():
    def work(i: int) -> None:
        if i == 5:
            raise ValueError("item 5 failed")

    with pytest.raises(ValueError, match="item 5 failed"):
        run_items(work, [(i,) for i in range(10)], 2)
    # the pool still works afterwards
    _, _, done = _concurrency(2, n_items=6, pause=0.0)
    assert np.all(done == 1)


def test_a_call_from_a_pool_thread_runs_inline_without_deadlock():
    inner_threads: list[set[int]] = []

    def inner(i: int, out: set) -> None:
        out.add(threading.get_ident())

    def outer(i: int) -> None:
        out: set[int] = set()
        run_items(inner, [(j, out) for j in range(8)], 2)
        inner_threads.append(out)

    run_items(outer, [(i,) for i in range(6)], 2)
    assert len(inner_threads) == 6
    for out in inner_threads:
        assert 1 <= len(out) <= 2


def _child(queue) -> None:
    from latent_em.compiled.pool import run_items as run

    done = [0] * 8

    def work(i: int) -> None:
        done[i] += 1

    run(work, [(i,) for i in range(8)], 2)
    queue.put(sum(done))


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_the_pool_works_in_a_forked_child():
    _concurrency(2, n_items=4, pause=0.0)  # the parent's pool exists before the fork
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue,))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0
    assert queue.get(timeout=5) == 8
