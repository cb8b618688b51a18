"""Use cases of the cloud: each method is one unit of work (it commits), with access checks and
audit rows. Routes parse and call these; queries live in :mod:`cloud.db.repositories`."""
