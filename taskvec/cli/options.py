"""Options every ``taskvec`` command shares, defined once (their choices from the registries)."""

from __future__ import annotations

import click

from taskvec.data.tasks import list_tasks
from taskvec.model.card import DEFAULT_MODEL
from taskvec.model.config import list_configs

MODEL_HELP = (f"model: a name with shipped weights ({DEFAULT_MODEL}), random:NAME ({', '.join(list_configs())}), "
              "or a .safetensors path")
task_option = click.option("--task", "task", required=True, type=click.Choice(list_tasks()), help="task name")
model_option = click.option("--model", default=DEFAULT_MODEL, show_default=True, help=MODEL_HELP)
