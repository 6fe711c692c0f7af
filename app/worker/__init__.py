"""The arq worker: advances managed warehouses through their state machine.

Entry points: `app.worker.main.run_worker(settings, burst=...)` (blocking) and
`app.worker.main.build_worker(settings, ...)` (an arq `Worker`, e.g. for tests);
`python -m app.worker [--burst]` runs it with settings from the environment.
"""
