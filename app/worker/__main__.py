"""`python -m app.worker [--burst]`: run the worker with settings from the environment."""

from __future__ import annotations

import argparse

from app.core.logging import configure_logging
from app.settings import Settings
from app.worker.main import run_worker


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m app.worker", description=__doc__)
    parser.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    args = parser.parse_args()
    settings = Settings()
    configure_logging(settings.log_level, settings.effective_log_format)
    run_worker(settings, burst=args.burst)


if __name__ == "__main__":
    main()
