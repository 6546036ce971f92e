"""django-q2's patches: checked before they are applied, pinned to the code they were reviewed
against, and in force inside a real cluster's workers."""

import hashlib
import importlib
import inspect
import multiprocessing
import multiprocessing.connection
import multiprocessing.queues
import os
import sys

import pytest
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured

from bimride.jobs.engine import q2compat
from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.engine.q2compat import ClusterQueue
from bimride.jobs.models import Job
from tests.conftest import wait_until

# The upstream code each patch replaces or relies on, with the sha256 of its source as reviewed
# for django-q2 1.11.1 on CPython 3.11. When one changes, re-review that patch in
# bimride/jobs/engine/q2compat.py (and its row in docs/jobs.md), then pin the new digest here.
REVIEWED = {
    "task queue": {
        "django_q.queues.Queue": "4b08355a852062e38a1a2bbeb13405e9e7f18be0337941360d3db9dbc1862b9b",
        "django_q.worker.worker": (
            "b30d59f639b088ea1c11af538ad57b03977a19f22b874d3319d63b24e2fb72c4"
        ),
        "multiprocessing.queues.Queue.get": (
            "359d1358ad01b056b9a524a74d2d71461b384f878bdad352c309d8305d76b0dd"
        ),
        "multiprocessing.queues.Queue._reset": (
            "4fbdb143cb02ec4b8ee50ca232b95d5558a4d9d25c4b45344c765b22619d3874"
        ),
    },
    "worker timer": {
        "django_q.cluster.Sentinel.spawn_worker": (
            "3c4764964efe10c10ee7a5a345e0af0111fe159a7c524f8b7af5c2ea1bba6f2a"
        ),
        "django_q.cluster.Sentinel.guard": (
            "b48dce5446f6cad6df06d898b26ee3653787f38b378494fb273455ca2deea13f"
        ),
        "django_q.cluster.Sentinel.reincarnate": (
            "1c3dc62b7aa35a00705e033e16cf1423b05a9ea9d0ce6bf48634a501a0bd0220"
        ),
        "django_q.worker.worker": (
            "b30d59f639b088ea1c11af538ad57b03977a19f22b874d3319d63b24e2fb72c4"
        ),
    },
    "timer's process": {
        "django_q.cluster.Sentinel.spawn_process": (
            "0f72360b891e9e957217686923ded132956422fbadcb56ed0e061a5ef3807b51"
        ),
    },
    "stopping": {
        "django_q.cluster.Cluster.sig_handler": (
            "e17fb87045374b3238d10cdf58676d2756c7557990b9be8f77894bf213de3591"
        ),
        "django_q.cluster.Cluster.__init__": (
            "140f22e15d6980b0d4b84bcc3f263cf64ec0595f33eddbfae668e2c8a335adc7"
        ),
        "django_q.cluster.Cluster.stop": (
            "0230e6a459b68502cdb428f015df781f90072e413f726173a718ac3edb899a32"
        ),
        "django_q.cluster.Sentinel.stop": (
            "d858ef90cdaaebf5e2647f543e92eaea29c160007006803e10b42409f6438039"
        ),
        "django_q.worker.worker": (
            "b30d59f639b088ea1c11af538ad57b03977a19f22b874d3319d63b24e2fb72c4"
        ),
    },
    "queued-tasks page (bimride/jobs/ops/admin.py QueuedTaskAdmin)": {
        "django_q.admin.QueueAdmin": (
            "aadea34f49cc695178d9bb917375c578fa353fbef4b388df50a9e0fc104c7141"
        ),
        "django_q.models.OrmQ": "9ea339cb669dbd9c556fbae07518a937037120bf96599cda088e9616c3257c35",
    },
}


def upstream_source(dotted: str) -> str:
    """The source of `dotted` (module.Class.attribute) as shipped, even where a patch replaced
    the attribute."""
    parts = dotted.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for name in parts[split:-1]:
            owner = getattr(owner, name)
        return inspect.getsource(q2compat.upstream(owner, parts[-1]))
    raise LookupError(dotted)


@pytest.mark.parametrize(
    ("patch", "dotted"), [(patch, dotted) for patch, code in REVIEWED.items() for dotted in code]
)
def test_the_upstream_code_each_patch_relies_on_is_the_code_reviewed(patch, dotted):
    digest = hashlib.sha256(upstream_source(dotted).encode()).hexdigest()
    assert digest == REVIEWED[patch][dotted], (
        f"{dotted} changed since the {patch!r} patch was reviewed: re-review that patch in"
        f" bimride/jobs/engine/q2compat.py and its row in docs/jobs.md, then pin sha256"
        f" {digest} here"
    )


def test_applying_twice_keeps_one_layer_of_each_patch():
    q2compat.apply()
    q2compat.apply()
    for owner, name, replacement in q2compat.PATCHES:
        assert getattr(owner, name) is replacement
    spawn_process = q2compat.upstream(q2compat.Sentinel, "spawn_process")
    assert spawn_process.__module__ == "django_q.cluster"
    assert q2compat.upstream(ClusterQueue, "get").__module__ == "django_q.queues"
    assert q2compat.upstream(q2compat.cluster, "Value") is multiprocessing.Value


def worker_taking_the_timeout_third(task_queue, result_queue, timeout, timer):
    """A worker as an upgrade might define it."""


def spawn_process_with_keywords(self, target, *args, **kwargs):
    """Sentinel.spawn_process as an upgrade might define it."""


def spawn_worker_without_module_value(self):
    """Sentinel.spawn_worker making its timer without the module-level `Value`."""
    timer = multiprocessing.get_context().Value("f", -1)
    self.spawn_process(q2compat.worker, self.task_queue, self.result_queue, timer, self.timeout)


# a worker as an upgrade might define it: the timer no longer third, no post_spawn sent
UPGRADED_WORKER = [
    (q2compat, "worker", worker_taking_the_timeout_third),
    (q2compat.cluster, "worker", worker_taking_the_timeout_third),
]
UPGRADES = {
    "another version": ("version", [(q2compat, "SUPPORTED_VERSION", "1.12.0")]),
    "Value made elsewhere": (
        "worker timer",
        [(q2compat.Sentinel, "spawn_worker", spawn_worker_without_module_value)],
    ),
    "Value not multiprocessing's": (
        "worker timer",
        [(q2compat.cluster, "Value", multiprocessing.RawValue)],
    ),
    "spawn_process with keywords": (
        "timer's process",
        [(q2compat.Sentinel, "spawn_process", spawn_process_with_keywords)],
    ),
    "timer no longer third": ("timer's process", UPGRADED_WORKER),
    "queue without _reader.poll": (
        "task queue",
        [(multiprocessing.connection.Connection, "poll", None)],
    ),
    "macOS, without qsize": ("task queue", [(sys, "platform", "darwin")]),
    "sig_handler with keywords": (
        "stopping",
        [(q2compat.Cluster, "sig_handler", spawn_process_with_keywords)],
    ),
    "worker without post_spawn": ("stopping", UPGRADED_WORKER),
}


@pytest.mark.parametrize("upgrade", UPGRADES)
def test_a_django_q2_the_patches_do_not_fit_refuses_to_start(monkeypatch, upgrade):
    patch, changes = UPGRADES[upgrade]
    for owner, name, value in changes:
        monkeypatch.setattr(owner, name, value)
    with pytest.raises(ImproperlyConfigured, match=f"- {patch}: ") as refusal:
        q2compat.apply()
    assert "re-review" in str(refusal.value)
    monkeypatch.undo()
    assert q2compat.upstream(q2compat.Sentinel, "spawn_process").__module__ == "django_q.cluster"
    q2compat.apply()  # the refused attempt left nothing half applied


def test_the_jobs_app_checks_django_q2_when_it_starts(monkeypatch):
    monkeypatch.setattr(q2compat, "SUPPORTED_VERSION", "1.12.0")
    with pytest.raises(ImproperlyConfigured, match="django-q2 1.11.1 is installed"):
        apps.get_app_config("jobs").ready()


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_a_real_clusters_workers_run_with_every_replacement(start_cluster):
    # One attempt at a time: the job runs in django-q2's worker loop itself, which it reports on.
    start_cluster("default", workers=1, JOB_CONCURRENCY_DEFAULT="1")
    job = enqueue("tests.report_q2compat", {"n": 1})
    wait_until(
        lambda: Job.objects.values_list("state", flat=True).get(pk=job.pk) == "succeeded",
        what="the report from inside a worker",
    )
    report = Job.objects.get(pk=job.pk).result
    assert report["pid"] != os.getpid() and report["in_worker_loop"]
    assert report["timer"] == "WorkerTimer" and report["task_queue_get_replaced"]
    assert report["replaced"] == {
        "Queue.put": True,
        "Queue.qsize": True,
        "Queue.empty": True,
        "Queue.get": True,
        "django_q.cluster.Value": True,
        "Sentinel.spawn_process": True,
        "Cluster.sig_handler": True,
    }
    assert report["obeys_sigterm"] and not report["obeys_sigint"]
