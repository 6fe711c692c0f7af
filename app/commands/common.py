"""What every `warehouse` subcommand shares: settings, validation, output, failures.

Failures are `CLIError`s (or errors of the service's own tree) and end as one line on stderr
with a non-zero exit, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from app.core.db import build_engine, build_sessionmaker
from app.core.errors import APIError
from app.core.migrate import MigrationsNotFound
from app.settings import PlaceholderSecretError, Settings

T = TypeVar("T")
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]


class CLIError(Exception):
    """A failure to report as one line on stderr."""


def load_settings() -> Settings:
    try:
        return Settings()
    except PlaceholderSecretError as exc:
        raise CLIError(str(exc)) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]).upper() or "settings"
        raise CLIError(f"invalid setting {field}: {first['msg']}") from None


def validate(model: type[BaseModel], options: dict[str, str], **values: Any) -> Any:
    """Validate with the internal API's body model; name the CLI option on failure."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        option = options.get(field, f"--{field.replace('_', '-')}")
        raise CLIError(f"invalid {option}: {first['msg']}") from None


async def _in_transaction(work: Callable[[Any], Awaitable[T]]) -> T:
    engine = build_engine(load_settings(), pool_size=1)
    try:
        async with build_sessionmaker(engine)() as session:
            result = await work(session)
            await session.commit()
            return result
    finally:
        await engine.dispose()


def run_in_transaction(work: Callable[[Any], Awaitable[T]]) -> T:
    """Run `work(session)` in one transaction on the service database, then commit."""
    return asyncio.run(_in_transaction(work))


def emit(as_json: bool, payload: dict[str, Any], human: str) -> None:
    if as_json:
        typer.echo(json.dumps(payload, default=str))
    else:
        typer.echo(human)


def split_list(raw: str | None) -> list[str]:
    return [part.strip() for part in (raw or "").split(",") if part.strip()]


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise SystemExit(1)


def describe_failure(exc: BaseException) -> str | None:
    """A one-line explanation of an expected failure, or None for a real bug."""
    import asyncpg
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, CLIError | MigrationsNotFound):
        return str(exc)
    if isinstance(exc, APIError):
        return exc.detail
    if isinstance(exc, DBAPIError):
        orig = exc.orig
        cause = getattr(orig, "__cause__", None) or orig
        if isinstance(cause, asyncpg.exceptions.UndefinedTableError):
            return "the service database is not migrated: run `warehouse migrate` first"
        name = type(cause).__name__
        first_line = str(cause).splitlines()[0] if str(cause) else name
        return f"database error ({name}): {first_line}"
    if isinstance(exc, asyncpg.exceptions.PostgresError):
        return f"database error ({type(exc).__name__}): {exc}"
    if isinstance(exc, OSError | TimeoutError):
        return f"cannot reach the service database ({type(exc).__name__}): {exc}"
    return None
