"""The qcluster's shared state survives a worker SIGKILLed while holding one of its locks."""

import multiprocessing
import os
import signal
import threading

from bimride.jobs.engine.q2compat import ClusterQueue, WorkerTimer

FORK = multiprocessing.get_context("fork")


def die_holding(lock, held) -> None:
    """In a child process: take `lock`, say so, and be SIGKILLed without releasing it."""
    lock.acquire()
    held.set()
    os.kill(os.getpid(), signal.SIGKILL)


def within(seconds: float, action) -> bool:
    """Whether `action` returned within `seconds` (it is left running in a thread if not)."""
    thread = threading.Thread(target=action, daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive()


def test_the_guard_waits_for_a_live_workers_timer_lock():
    timer, held = WorkerTimer("f", -1), FORK.Event()

    def busy_worker():
        with timer.get_lock():
            timer.value = 30
            held.set()
            threading.Event().wait(1.0)
            timer.value = -1

    process = FORK.Process(target=busy_worker)
    process.start()
    timer.process = process
    assert held.wait(10)
    with timer.get_lock():
        assert timer.value == -1  # read after the worker let go, not in between
    process.join(10)


def test_the_guard_gets_past_the_timer_lock_of_a_worker_killed_holding_it():
    timer, held = WorkerTimer("f", -1), FORK.Event()
    process = FORK.Process(target=die_holding, args=(timer._lock, held))
    process.start()
    timer.process = process
    assert held.wait(10)
    process.join(10)

    def guard_cycle():
        with timer.get_lock():
            if timer.value > 0:
                timer.value -= 1

    assert within(10, guard_cycle)
    assert timer.value == -1


def test_a_worker_killed_holding_the_queue_size_lock_does_not_stop_the_pusher():
    tasks, held = ClusterQueue(maxsize=4), FORK.Event()
    process = FORK.Process(target=die_holding, args=(tasks.size.count.get_lock(), held))
    process.start()
    assert held.wait(10)
    process.join(10)
    taken = []

    def push_and_take():
        tasks.put({"id": 1})
        taken.append(tasks.get())

    assert within(10, push_and_take)
    assert taken == [{"id": 1}]
    assert (tasks.qsize(), tasks.empty()) == (0, True)
