"""The heatmap: location pings kept by the request, folded into cells by the `bulk` queue."""

import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection, transaction

from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.engine.runner import run_job
from rides import services, tasks
from rides.models import HeatmapCell, LocationPing

NINE = datetime(2026, 11, 23, 9, 15, tzinfo=UTC)
TEN = datetime(2026, 11, 23, 10, 5, tzinfo=UTC)


def cells() -> dict:
    return {
        (cell.cell_lat, cell.cell_lng, cell.hour.hour): cell.pings
        for cell in HeatmapCell.objects.all()
    }


@pytest.mark.django_db
def test_a_fold_counts_each_ping_in_its_cell_and_hour_once():
    LocationPing.objects.bulk_create(
        [
            LocationPing(lat=52.5201, lng=13.4049, at=NINE),
            LocationPing(lat=52.5198, lng=13.4038, at=NINE),
            LocationPing(lat=52.5201, lng=13.4049, at=TEN),
            LocationPing(lat=-33.8688, lng=151.2093, at=NINE),
        ]
    )
    HeatmapCell.objects.create(
        cell_lat=Decimal("52.52"), cell_lng=Decimal("13.40"), hour=NINE.replace(minute=0), pings=5
    )

    assert services.heatmap_fold(chunk=100) == 4

    assert cells() == {
        (Decimal("52.52"), Decimal("13.40"), 9): 7,
        (Decimal("52.52"), Decimal("13.40"), 10): 1,
        (Decimal("-33.87"), Decimal("151.21"), 9): 1,
    }
    assert not LocationPing.objects.exists()
    assert services.heatmap_fold(chunk=100) == 0
    assert sum(cells().values()) == 9


@pytest.mark.django_db
def test_the_fold_job_folds_every_chunk_and_reports_how_many():
    LocationPing.objects.bulk_create(
        [LocationPing(lat=10.0, lng=20.0, at=NINE) for _ in range(tasks.FOLD_CHUNK + 3)]
    )
    job = enqueue("rides.fold_location_pings")

    run_job(job.pk)

    job.refresh_from_db()
    assert (job.state, job.result) == ("succeeded", {"folded": tasks.FOLD_CHUNK + 3})
    assert cells() == {(Decimal("10.00"), Decimal("20.00"), 9): tasks.FOLD_CHUNK + 3}
    assert not LocationPing.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_folds_at_once_count_each_ping_once():
    LocationPing.objects.bulk_create([LocationPing(lat=1.0, lng=2.0, at=NINE) for _ in range(50)])
    folding, other_done = threading.Event(), threading.Event()
    seen = {}

    def first():
        with transaction.atomic():  # holds the pings it took until the other fold ran
            seen["first"] = services.heatmap_fold(chunk=30)
            folding.set()
            other_done.wait(timeout=10)
        connection.close()

    def second():
        folding.wait(timeout=10)
        seen["second"] = services.heatmap_fold(chunk=100)
        other_done.set()
        connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert seen == {"first": 30, "second": 20}
    assert cells() == {(Decimal("1.00"), Decimal("2.00"), 9): 50}
    assert not LocationPing.objects.exists()
