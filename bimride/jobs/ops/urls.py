from django.urls import path

from bimride.jobs.ops import views

urlpatterns = [
    path("jobs/<id:job_id>", views.JobDetailView.as_view(), name="job-detail"),
    # a job by its opaque id: a Tasks API result id
    path("jobs/<uuid:job_uid>", views.JobByUidView.as_view(), name="job-detail-by-uid"),
    path("ops/queues", views.QueuesView.as_view(), name="ops-queues"),
    path("ops/dead-letters", views.DeadLetterListView.as_view(), name="dead-letter-list"),
    path(
        "ops/dead-letters/<id:dead_letter_id>/retry",
        views.DeadLetterRetryView.as_view(),
        name="dead-letter-retry",
    ),
    path(
        "ops/dead-letters/<id:dead_letter_id>/discard",
        views.DeadLetterDiscardView.as_view(),
        name="dead-letter-discard",
    ),
]
