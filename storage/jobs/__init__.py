"""Background work: the job queue kept in the catalogue and the worker that runs it."""
