"""Celery workers that run GreenTrainer jobs: one process per GPU (or a CPU worker), a lease on
each job in the database, rho asked from the scheduler at every epoch, energy from CodeCarbon."""
