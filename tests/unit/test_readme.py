"""Every command block of the README runs as written from the repository root, with no PYTHONPATH, except a
block whose first line starts with ``# needs:`` (what it needs, e.g. the running stack or Docker, is named
right there, so a reader sees it too). A failing command fails the test, naming the block's line."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass

import pytest

from sluice.runtime import REPO_ROOT

pytestmark = pytest.mark.unit

README = REPO_ROOT / "README.md"
#: Seconds a block may take (on a 2-core machine shared with other work).
BLOCK_TIMEOUT_S = 600
NEEDS = "# needs:"


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    text: str

    @property
    def needs(self) -> str | None:
        first = self.text.lstrip().splitlines()[0] if self.text.strip() else ""
        return first[len(NEEDS) :].strip() if first.startswith(NEEDS) else None


def shell_blocks(markdown: str) -> list[Block]:
    """The ```bash / ```sh / ```shell blocks of a Markdown text, in order."""
    blocks = []
    for m in re.finditer(r"^```(bash|sh|shell)[ \t]*\n(.*?)^```[ \t]*$", markdown, flags=re.M | re.S):
        blocks.append(Block(markdown.count("\n", 0, m.start()) + 1, m.group(2)))
    return blocks


def test_the_parser_finds_blocks_and_their_needs() -> None:
    text = "intro\n```bash\necho hi\n```\n\n```sh\n# needs: the stack\nmake up\n```\n```\nnot a shell block\n```\n"
    blocks = shell_blocks(text)
    assert [(b.line, b.needs) for b in blocks] == [(2, None), (6, "the stack")]


BLOCKS = shell_blocks(README.read_text(encoding="utf-8"))
RUNNABLE = [b for b in BLOCKS if b.needs is None]


def test_the_readme_has_blocks_that_run_and_each_other_block_says_what_it_needs() -> None:
    assert RUNNABLE, "no README block runs without a stack: the test would check nothing"
    assert all(b.needs for b in BLOCKS if b not in RUNNABLE)


@pytest.mark.parametrize("block", RUNNABLE, ids=[f"README.md:{b.line}" for b in RUNNABLE])
def test_a_readme_block_runs_as_written(block: Block, tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["SLUICE_HOME"] = str(tmp_path / "home")  # nothing the block writes lands in the checkout's state
    try:
        out = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block.text],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"README.md:{block.line}: the block did not finish in {BLOCK_TIMEOUT_S}s:\n{block.text}")
    assert out.returncode == 0, (
        f"README.md:{block.line}: the block exits {out.returncode}:\n{block.text}\n"
        f"--- stdout (end)\n{out.stdout[-2000:]}\n--- stderr (end)\n{out.stderr[-2000:]}"
    )
