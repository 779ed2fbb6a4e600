"""docs/config-reference.md, generated from the config models (``python -m sluice config reference``).

Every key of a model YAML is a field of a pydantic model in :mod:`sluice.config`; its type, constraints,
default and description (the docstring under the field) are read from there, so the page cannot drift from
what is validated. tests/unit/test_config_reference.py fails when the committed page differs.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from sluice.config import METRICS, ModelConfig

COMMAND = "python -m sluice config reference > docs/config-reference.md"

_INTRO = f"""\
# Config reference

<!-- Generated from include/sluice/config.py by `{COMMAND}`; do not edit by hand:
     tests/unit/test_config_reference.py fails when this page differs from the generated one. -->

One YAML file per model in `include/models/<name>.yaml` (or `$SLUICE_MODELS_DIR`), validated at load into
frozen objects; a mistake names the file, the key and what was expected. `sluice init MODEL --dataset NAME`
drafts one from landed partitions (docs/onboarding.md); `sluice config check` validates every file and its
imports. Keys are listed per section with their type and constraints, their default ("required": no
default), and what they do. Defaults that depend on the data are drafted by `sluice init` from what it
measured, as each key's description says.
"""

_LAYOUT = """\
## The lake layout a model reads

| zone | path | written by |
|---|---|---|
| landing | `landing/<dataset.name>/ds=YYYY-MM-DD/part-*.parquet` (or `.csv`), then `_SUCCESS` | the producer |
| labels | `labels/<labels.dataset>/ds=YYYY-MM-DD/part-*.parquet`, then `_SUCCESS` | the producer |
| features | `features/<features.feature_set>/ds=.../_manifest.json` | the features DAG (atomic) |
| predictions | `predictions/<name>/ds=.../_manifest.json` | the batch-inference DAG (atomic) |

A landing partition holds the events of its day (`dataset.timestamp_column` inside the day); published
partitions are content-addressed and switched by their manifest; predictions carry the model version and
run id in every row.

### Labels

- Ground truth lands like events, in its own dataset: the labels of the events of day **D** land in
  `labels/<labels.dataset>/ds=<D + labels.delay_days>/`, so **`ds = event day + delay`**. The data files are
  written first and an empty **`_SUCCESS`** marker last; a partition without `_SUCCESS` is not read.
- One row per labelled event, with two columns: the **join key** (`labels.join_key`, the events'
  `dataset.id_column`) and the **label column** (`labels.column`: 0/1 for classification, a number for
  regression). Other columns are ignored; an event without a label row is unlabelled (not trained on).
- Training joins a feature partition of day D with the label partition `D + delay_days`; monitoring judges
  live performance of day D once `D + delay_days + monitoring.label_wait_days` has passed.
- `sluice init` infers `delay_days` as the most common offset between a label partition and the event
  partition of the keys it holds, and prints any other offsets it saw.
"""


def _metrics() -> str:
    rows = ["| metric | task | better |", "|---|---|---|"]
    for name, (task, _, higher) in METRICS.items():
        rows.append(f"| `{name}` | {task} | {'higher' if higher else 'lower'} |")
    return "## Metrics (gate and monitoring)\n\n" + "\n".join(rows) + "\n"


def _constraints(metadata: list[Any]) -> str:
    parts = []
    for m in metadata:
        for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"), ("min_length", "length >=")):
            if getattr(m, attr, None) is not None:
                parts.append(f"{sym} {getattr(m, attr)}")
        if getattr(m, "pattern", None):
            parts.append(f"matches `{m.pattern}`")
    return ", ".join(parts)


def type_name(annotation: Any) -> str:
    """A reader's name for a type: ``int (>= 1)``, ``list of str``, ``"a" | "b"``, a section's key."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        inner, *meta = args
        extra = _constraints([x for m in meta for x in getattr(m, "metadata", [m])])
        return f"{type_name(inner)} ({extra})" if extra else type_name(inner)
    if origin is typing.Literal:
        return " | ".join(f'"{a}"' for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else type_name(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {type_name(args[0])}"
        return "[" + ", ".join(type_name(a) for a in args) + "]"
    if origin is dict:
        return f"mapping {type_name(args[0])} -> {type_name(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(its keys' defaults)"
    if isinstance(value, tuple):
        value = list(value)
    text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
    return f"`{text}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _field_type(field: FieldInfo) -> str:
    text = type_name(field.annotation)
    extra = _constraints(field.metadata)
    return f"{text} ({extra})" if extra else text


def _sections(model: type[BaseModel], path: str) -> list[tuple[str, type[BaseModel]]]:
    """``model`` and every nested section model under it, depth first, with their key paths."""
    out = [(path, model)]
    for name, field in model.model_fields.items():
        for candidate in (field.annotation, *typing.get_args(field.annotation)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                out += _sections(candidate, f"{path}.{name}" if path else name)
    return out


def missing_descriptions() -> list[str]:
    """Keys without a description (a test keeps this empty)."""
    return [
        f"{path + '.' if path else ''}{name}"
        for path, model in _sections(ModelConfig, "")
        for name, field in model.model_fields.items()
        if not (field.description or "").strip()
    ]


def render() -> str:
    """The whole page."""
    parts = [_INTRO, _LAYOUT]
    for path, model in _sections(ModelConfig, ""):
        title = f"`{path}`" if path else "Top level"
        doc = " ".join((model.__doc__ or "").split()) if model is not ModelConfig else ""
        rows = ["| key | type | default | description |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            key = f"{path}.{name}" if path else name
            cells = (_field_type(field), _default(field), field.description or "")
            rows.append(f"| `{key}` | " + " | ".join(_cell(c) for c in cells) + " |")
        parts.append(f"## {title}\n\n" + (f"{doc}\n\n" if doc else "") + "\n".join(rows) + "\n")
    parts.append(_metrics())
    return "\n".join(parts)
