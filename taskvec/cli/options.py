"""Options every command shares, defined once (their choices from the registries).

``--task`` (``taskvec``, ``tvexport``, ``tvrun``): a built-in task's name (the registry's
choices) or ``pairs:DIR[:iou|:psnr]`` (:mod:`taskvec.data.pairs`). Parsing only checks the
form; the folder is read (and refused with one line) by the command's function, after the
common options such as ``--max-pixels`` took effect. Torch-free: tvrun imports it."""

from __future__ import annotations

from typing import Sequence

import click

from taskvec.model.card import DEFAULT_MODEL
from taskvec.model.config import list_configs

MODEL_HELP = (f"model: a name with shipped weights ({DEFAULT_MODEL}), random:NAME ({', '.join(list_configs())}), "
              "or a .safetensors path")
PAIRS_HELP = "or pairs:DIR — a task defined by DIR/input + DIR/target pairs (also LOL low/high, VOC); pairs:DIR:iou|psnr names the metric"


class TaskType(click.ParamType):
    """A name from ``choices`` (default: every registered task, looked up on first use —
    the task registry imports torch) or a ``pairs:`` spec."""

    name = "task"

    def __init__(self, choices: Sequence[str] | None = None) -> None:
        self._choices = tuple(choices) if choices is not None else None

    @property
    def choices(self) -> tuple[str, ...]:
        if self._choices is None:
            from taskvec.data.tasks import list_tasks

            self._choices = tuple(list_tasks())
        return self._choices

    def get_metavar(self, param, ctx=None) -> str:  # click 8.1 and 8.2 signatures
        return "[" + "|".join(self.choices) + "|pairs:DIR]"

    def convert(self, value, param, ctx):
        if value in self.choices:
            return value
        from taskvec.data.pairs import is_pairs_spec  # only for a non-built-in name: it imports torch

        if is_pairs_spec(value):
            return value
        self.fail(f"{value!r} is not one of {', '.join(map(repr, self.choices))} or pairs:DIR", param, ctx)


def make_task_option(choices: Sequence[str] | None = None, help: str = "task name"):
    """A ``--task`` option over ``choices`` (default: every registered task) or ``pairs:DIR``."""
    return click.option("--task", "task", required=True, type=TaskType(choices), help=f"{help} ({PAIRS_HELP})")


task_option = make_task_option()
model_option = click.option("--model", default=DEFAULT_MODEL, show_default=True, help=MODEL_HELP)
