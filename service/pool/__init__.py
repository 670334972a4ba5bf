"""The GPU pool: leases, worker slots, the dispatcher and reconciler, fair share, green-window
planning, the broker's queues. Database and queue code shared by the scheduler process, the API's
fast path and the workers (each process wires it in `greentrainer.commands`)."""
