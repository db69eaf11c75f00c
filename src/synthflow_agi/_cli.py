"""The ``synthflow-agi`` command: agi, check, prepare, fastagi, probe-refer.

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
from ._clusters import LEGACY_CLUSTER
from ._errors import ApiError, ConfigError, SynthflowAgiError
from ._handoff import custom_variable_sources
from ._settings import Settings, config_path, load_base, resolve
from ._text import printable, redact

# A fictional number (NANP 555-01xx) for `check --live`, so no real person is named.
TEST_CALLER = "+12025550199"

MODE_NOTES = {
    "dial": ("Asterisk dials the agent itself, so X-EI is on the INVITE by construction; "
             "Asterisk stays in the call's signalling (and media, unless direct_media is set up)."),
    "transfer": ("a REFER to the party that delivered the call, with X-EI inside the Refer-To URI. "
                 "Most SIP stacks drop URI headers (see docs/refer-recipients.md); SUCCESS means "
                 "'the REFER was accepted', not 'X-EI arrived'. Run `synthflow-agi probe-refer` first."),
    "auto": ("REFER first, with the same caveat as transfer; Dial only when the REFER itself is refused."),
}


class _Output:
    """Everything the CLI prints goes through here, with the token redacted."""

    def __init__(self) -> None:
        self.secrets: tuple = ()

    def say(self, text: str, err: bool = False) -> None:
        print(redact(text, self.secrets), file=sys.stderr if err else sys.stdout)


OUT = _Output()


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "agi":
        from ._classic import main as classic_main

        return classic_main()
    try:
        return args.run(args)
    except SynthflowAgiError as exc:
        OUT.say(f"synthflow-agi: {exc.status.value}: {printable(exc.reason)}", err=True)
        return 1 if isinstance(exc, ApiError) else 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        OUT.say(f"synthflow-agi: INTERNAL_ERROR: {type(exc).__name__}", err=True)
        return 2


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
    # Numbers are checked by check_options, so a bad one is one error line, not argparse's usage block.
    fastagi.add_argument("--max-connections", default="500", help="calls served at once (1-10000); more are refused")
    fastagi.add_argument("--read-timeout", default="30", help="seconds to wait on a silent peer (> 0)")
    fastagi.add_argument("--grace", default="30", help="seconds SIGTERM waits for calls in flight (> 0)")
    fastagi.add_argument("--summary-interval", default="300", help="seconds between summary log lines (> 0)")
    fastagi.add_argument("--allow", metavar="CIDR[,CIDR...]",
                         help="peers that may connect (default: loopback, when listening on loopback; "
                              "required otherwise); others are closed at once")
    fastagi.add_argument("--metrics-listen", metavar="HOST:PORT",
                         help="serve Prometheus /metrics and /healthz there (needs synthflow-agi[metrics])")
    fastagi.set_defaults(run=_fastagi)
    from ._probe import add_parser as add_probe_refer_parser

    add_probe_refer_parser(commands)
    return parser


def _settings() -> Settings:
    base = load_base(os.environ)
    OUT.secrets = base.secrets
    if not base.usable:
        raise ConfigError(base.error)
    return resolve(base.raw)


def _check(args: argparse.Namespace) -> int:
    path, named = config_path(os.environ)
    state = "found" if os.path.exists(path) else ("MISSING" if named else "absent, defaults and environment only")
    OUT.say(f"config file: {path} ({state})")
    settings = _settings()
    from ._numbers import to_e164

    agent = to_e164(settings.agent_number, settings.default_region, "agent")
    width = max(len(key) for key, _ in settings.public_items())
    for key, value in settings.public_items():
        OUT.say(f"  {key.ljust(width)} = {value}")
    OUT.say(f"agent number in E.164: {agent}")
    OUT.say(f"mode {settings.mode}: {MODE_NOTES[settings.mode]}")
    if settings.cluster == LEGACY_CLUSTER:
        OUT.say("WARNING: cluster global is Synthflow's legacy cluster, retired by the end of 2026; "
                "set cluster = us or eu (the workspace's data region)", err=True)
    if args.live:
        # Always the fictional caller: a live check must not register a real person's number.
        caller = to_e164(TEST_CALLER, "US", "caller")
        _print_answer(settings, PrepareRequest(caller, agent, settings.model_id, settings.workspace_id, {}))
    OUT.say("configuration OK")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    settings = _settings()
    from ._numbers import to_e164

    for item in args.var:
        if "=" not in item:
            raise ConfigError(f"--var {item[:40]!r} is not KEY=VALUE")
    # The same key rule as AGI arguments, so what works here works in the dialplan.
    variables = dict(custom_variable_sources((), tuple(args.var)))
    request = PrepareRequest(
        to_e164(args.from_number, settings.default_region, "caller"),
        to_e164(args.to_number or settings.agent_number, settings.default_region, "agent"),
        settings.model_id, settings.workspace_id, variables,
    )
    _print_answer(settings, request)
    return 0


def _fastagi(args: argparse.Namespace) -> int:
    from ._fastagi import METRICS_PORT, serve
    from ._options import check_options, parse_listen
    from ._logging import configure
    from ._metrics import require_library
    from ._peers import parse_allow

    host, _ = parse_listen(args.listen)
    max_connections, read_timeout, grace, summary_interval = check_options(
        args.max_connections, args.read_timeout, args.grace, args.summary_interval)
    allow = parse_allow(args.allow, host)
    if args.metrics_listen is not None:
        parse_listen(args.metrics_listen, "--metrics-listen", METRICS_PORT)
        require_library()
    configure("stderr")
    try:
        return serve(args.listen, max_connections, read_timeout, grace, summary_interval, allow, args.metrics_listen)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.listen}: {exc.strerror or exc}") from exc


def _print_answer(settings, request: PrepareRequest) -> None:
    from ._api import SynthflowClient

    client = SynthflowClient(settings.api_url, settings.api_token, settings.retries)
    try:
        prepared = client.prepare(request, settings.timeout)
    finally:
        client.close()
    OUT.say(json.dumps(prepared.answer, indent=2, ensure_ascii=True, sort_keys=True))
