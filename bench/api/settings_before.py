"""BimRide's settings for the "before" of `bench.api`: the receipt is sent inside the request.

Only the URL configuration differs: `bench.api.urls_before` puts a completion view in front of the
real one that also renders and sends the receipt through anymail before answering, as the code
did before receipts became a job. Nothing of it is in the product.
"""

from bimride.settings import *  # noqa: F403

ROOT_URLCONF = "bench.api.urls_before"
