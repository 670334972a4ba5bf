"""One module per `greentrainer` command: each parses its arguments and wires the parts below it
(`greentrainer_core`, `greentrainer_carbon`, `service`, `worker`) into a process or a run.
Nothing below `greentrainer` imports these modules (import-linter checks it)."""
