"""Development tooling, not part of the product: the embedded PostgreSQL (`devdb`), the Stripe
stand-in and the email ones (Postmark, SendGrid, sharing `email_standin`), PgBouncer
(`pgbouncer`), and the process supervisor that `make run`, the tests and the benchmarks share.
Nothing in the product packages imports it (a lint contract says so): `make run`, `make test`
and the benchmarks give the product the embedded PostgreSQL's URL as `DATABASE_URL`."""
