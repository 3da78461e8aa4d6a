"""The SQLite job queue: order, exclusive claims, heartbeats, restarts after a dead worker, clean-up."""

import threading

import pytest

from recammaster.serve.queue import JobQueue, is_job_id, new_job_id
from recammaster.serve.worker import worker_device


@pytest.fixture
def queue(tmp_path) -> JobQueue:
    return JobQueue(tmp_path / "jobs.sqlite3")


def add(queue: JobQueue, created: float, client: str = "1.2.3.4") -> str:
    job_id = new_job_id()
    queue.submit(job_id, client=client, caption="c", trajectory="pan-right", source_name="a.mp4",
                 source_file="upload.mp4", now=created)  # fmt: skip
    return job_id


def test_ids_are_long_random_and_the_only_accepted_shape():
    ids = {new_job_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(is_job_id(job_id) and len(job_id) == 43 for job_id in ids)
    for bad in ("", "..", "../jobs.sqlite3", "a" * 42, "a" * 44, "a/" + "a" * 41, "a" * 42 + "."):
        assert not is_job_id(bad)


def test_jobs_run_oldest_first_and_know_their_place(queue):
    first, second, third = add(queue, 10.0), add(queue, 20.0), add(queue, 30.0)
    assert [queue.position(queue.get(i)) for i in (first, second, third)] == [1, 2, 3]
    claimed = queue.claim("w1", now=40.0)
    assert (claimed.id, claimed.state, claimed.attempts, claimed.worker) == (first, "running", 1, "w1")
    assert [queue.position(queue.get(i)) for i in (first, second, third)] == [0, 1, 2]
    assert queue.counts() == {"queued": 2, "running": 1, "done": 0, "failed": 0}


def test_concurrent_workers_never_take_the_same_job(tmp_path):
    queue = JobQueue(tmp_path / "jobs.sqlite3")
    submitted = {add(queue, float(index)) for index in range(40)}
    taken: list[str] = []
    lock = threading.Lock()

    def work(name: str) -> None:
        own = JobQueue(queue.path)  # each worker process has its own connections
        while (job := own.claim(name)) is not None:
            with lock:
                taken.append(job.id)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == sorted(submitted)  # every job once, none twice


def test_a_silent_worker_gives_its_job_back_and_a_job_that_keeps_killing_workers_fails(queue):
    job_id = add(queue, 0.0)
    queue.claim("dead", now=100.0)
    assert queue.requeue_stale(30.0, 3, now=120.0) == []  # heartbeat 20 s old: still alive
    assert queue.report(job_id, "dead", progress=0.5, stage="step 1", now=125.0)
    assert queue.requeue_stale(30.0, 3, now=150.0) == []
    assert queue.requeue_stale(30.0, 3, now=160.0) == [job_id]
    job = queue.get(job_id)
    assert (job.state, job.worker, job.progress, job.attempts) == ("queued", None, 0.0, 1)
    assert "restarted" in job.stage
    assert not queue.report(job_id, "dead", progress=0.9, stage="late"), "the dead worker lost the job"
    for attempt in (2, 3):
        assert queue.claim("w", now=200.0 * attempt).attempts == attempt
        queue.requeue_stale(30.0, 3, now=200.0 * attempt + 31)
    job = queue.get(job_id)
    assert job.state == "failed"
    assert job.error == "the worker stopped 3 times while rendering this video; it was not tried again"


def test_a_politely_stopped_worker_puts_the_job_back_without_counting_an_attempt(queue):
    job_id = add(queue, 0.0)
    queue.claim("w")
    assert queue.release(job_id, "w")
    job = queue.get(job_id)
    assert (job.state, job.attempts, queue.position(job)) == ("queued", 0, 1)


def test_finish_records_success_or_the_error_and_only_for_the_owner(queue):
    done, failed = add(queue, 0.0), add(queue, 1.0)
    queue.claim("w")
    assert not queue.finish(done, "someone-else")
    assert queue.finish(done, "w", now=50.0)
    queue.claim("w")
    assert queue.finish(failed, "w", error="bad trajectory", now=60.0)
    assert (queue.get(done).state, queue.get(done).progress) == ("done", 1.0)
    assert (queue.get(failed).state, queue.get(failed).error) == ("failed", "bad trajectory")
    assert queue.expired(55.0) == [done]
    assert sorted(queue.expired(61.0)) == sorted([done, failed])
    queue.delete(done)
    assert queue.get(done) is None


def test_submissions_are_counted_per_client_within_the_window(queue):
    for created in (10.0, 20.0, 30.0):
        add(queue, created, client="a")
    add(queue, 25.0, client="b")
    assert queue.recent_submissions("a", 15.0) == [20.0, 30.0]
    assert queue.recent_submissions("b", 0.0) == [25.0]


def test_a_pool_on_several_gpus_gives_each_worker_its_own():
    assert [worker_device("cuda", index, 4) for index in range(6)] == ["cuda:0", "cuda:1", "cuda:2", "cuda:3",
                                                                        "cuda:0", "cuda:1"]  # fmt: skip
    assert [worker_device("cuda", index, 1) for index in range(2)] == ["cuda", "cuda"]
    assert [worker_device("cuda:1", index, 4) for index in range(2)] == ["cuda:1", "cuda:1"]
    assert worker_device("cpu", 3, 0) == "cpu"
