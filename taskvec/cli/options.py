"""The ``--task`` option shared by ``taskvec``, ``tvexport`` and ``tvrun``: a built-in task's
name (the registry's choices) or ``pairs:DIR[:iou|:psnr]`` (:mod:`taskvec.data.pairs`).

Parsing only checks the form; the folder is read (and refused with one line) by the
command's function, after the common options such as ``--max-pixels`` took effect."""

from __future__ import annotations

from typing import Sequence

import click

from taskvec.data.tasks import list_tasks

PAIRS_HELP = "or pairs:DIR — a task defined by DIR/input + DIR/target pairs (also LOL low/high, VOC); pairs:DIR:iou|psnr names the metric"


class TaskType(click.ParamType):
    """A name from ``choices`` (default: every registered task) or a ``pairs:`` spec."""

    name = "task"

    def __init__(self, choices: Sequence[str] | None = None) -> None:
        self.choices = tuple(choices) if choices is not None else tuple(list_tasks())

    def get_metavar(self, param, ctx=None) -> str:  # click 8.1 and 8.2 signatures
        return "[" + "|".join(self.choices) + "|pairs:DIR]"

    def convert(self, value, param, ctx):
        from taskvec.data.pairs import is_pairs_spec

        if value in self.choices or is_pairs_spec(value):
            return value
        self.fail(f"{value!r} is not one of {', '.join(map(repr, self.choices))} or pairs:DIR", param, ctx)


def task_option(choices: Sequence[str] | None = None, help: str = "task name"):
    return click.option("--task", "task", required=True, type=TaskType(choices), help=f"{help} ({PAIRS_HELP})")
