"""The `greentrainer` command: one entry point that dispatches to the core, the service and the workers."""
