"""The ``synthflow-agi`` command: agi, check, prepare.

Every failure ends as one line on stderr and a non-zero exit, never a
traceback: 1 when Synthflow failed, 2 for configuration or usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional

from . import __version__
from ._call import PrepareRequest
from ._errors import ApiError, ConfigError, SynthflowAgiError
from ._settings import config_path, load_sources, resolve

# A fictional number (NANP 555-01xx) for `check --live`, so no real person is named.
TEST_CALLER = "+12025550199"


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "agi":
        from ._classic import main as classic_main

        return classic_main()
    try:
        return args.run(args)
    except SynthflowAgiError as exc:
        print(f"synthflow-agi: {exc.status.value}: {exc.reason}", file=sys.stderr)
        return 1 if isinstance(exc, ApiError) else 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synthflow-agi", description="Hand answered Asterisk calls to a Synthflow AI agent.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    commands.add_parser("agi", help="run the classic AGI on stdin/stdout (as agi-bin/synthflow.agi does)")
    check = commands.add_parser("check", help="validate the configuration and print the effective settings")
    check.add_argument("--live", action="store_true", help="also call prepare_inbound once with test numbers")
    check.set_defaults(run=_check)
    prepare = commands.add_parser("prepare", help="call prepare_inbound once and print the JSON answer")
    prepare.add_argument("--from", dest="from_number", required=True, help="the customer's number")
    prepare.add_argument("--to", dest="to_number", help="the agent's number (default: agent_number)")
    prepare.add_argument("--var", action="append", default=[], metavar="KEY=VALUE", help="a custom variable (repeatable)")
    prepare.set_defaults(run=_prepare)
    fastagi = commands.add_parser("fastagi", help="serve agi://HOST:PORT/synthflow for many calls at once")
    fastagi.add_argument("--listen", default="127.0.0.1:4573", help="address to listen on (default 127.0.0.1:4573)")
    fastagi.add_argument("--max-connections", type=int, default=500, help="calls served at once; more are refused")
    fastagi.add_argument("--read-timeout", type=float, default=30.0, help="seconds to wait on a silent peer")
    fastagi.add_argument("--grace", type=float, default=30.0, help="seconds SIGTERM waits for calls in flight")
    fastagi.add_argument("--summary-interval", type=float, default=300.0, help="seconds between summary log lines")
    fastagi.set_defaults(run=_fastagi)
    from ._probe import add_parser as add_probe_refer_parser

    add_probe_refer_parser(commands)
    return parser


def _check(args: argparse.Namespace) -> int:
    path, named = config_path(os.environ)
    state = "found" if os.path.exists(path) else ("MISSING" if named else "absent, defaults and environment only")
    print(f"config file: {path} ({state})")
    settings = resolve(load_sources(os.environ))
    from ._numbers import to_e164

    agent = to_e164(settings.agent_number, settings.default_region, "agent")
    width = max(len(key) for key, _ in settings.public_items())
    for key, value in settings.public_items():
        print(f"  {key.ljust(width)} = {value}")
    print(f"agent number in E.164: {agent}")
    if args.live:
        caller = to_e164(settings.from_number or TEST_CALLER, settings.default_region, "caller")
        _print_answer(settings, PrepareRequest(caller, agent, settings.model_id, settings.workspace_id, {}))
    print("configuration OK")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    settings = resolve(load_sources(os.environ))
    from ._numbers import to_e164

    variables = {}
    for item in args.var:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--var {item[:40]!r} is not KEY=VALUE")
        variables[key] = value
    request = PrepareRequest(
        to_e164(args.from_number, settings.default_region, "caller"),
        to_e164(args.to_number or settings.agent_number, settings.default_region, "agent"),
        settings.model_id, settings.workspace_id, variables,
    )
    _print_answer(settings, request)
    return 0


def _fastagi(args: argparse.Namespace) -> int:
    from ._fastagi import serve
    from ._logging import configure

    configure("stderr")
    try:
        return serve(args.listen, args.max_connections, args.read_timeout, args.grace, args.summary_interval)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.listen}: {exc.strerror or exc}") from exc


def _print_answer(settings, request: PrepareRequest) -> None:
    from ._api import SynthflowClient

    client = SynthflowClient(settings.api_url, settings.api_token, settings.retries)
    try:
        prepared = client.prepare(request, settings.timeout)
    finally:
        client.close()
    print(json.dumps(prepared.answer, indent=2, ensure_ascii=False, sort_keys=True))
