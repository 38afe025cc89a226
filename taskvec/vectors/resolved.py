"""One record of a task deployed on one model, resolved once per command (STYLE §14).

:func:`resolve_task` loads the model (once), takes its fingerprint from the loading (once),
finds the task vector (a file, an object, or the shipped default) and validates it against
the model once — task, fingerprint, blocks, widths, token counts of the zero-shot layout,
finite values (:meth:`TaskVector.validate <taskvec.vectors.taskvector.TaskVector.validate>`). The :class:`ResolvedTask` is then passed down:
the exporter, ``taskvec prompt``, ``tvrun``'s export cache and its torch backend, the
benchmarks read the model, fingerprint and vector from it instead of finding them again.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from taskvec.data.tasks import get_task
from taskvec.errors import UserError
from taskvec.model.card import DEFAULT_MODEL, ModelRef
from taskvec.model.checkpoint import load_model_ref, model_fingerprint
from taskvec.model.mae_vqgan import BlockId, MaeVQGAN, Patch
from taskvec.vectors.taskvector import TaskVector, load_taskvector


@dataclass(frozen=True)
class ResolvedTask:
    """``task`` on ``model`` (the loaded weights, fingerprint ``fingerprint``, found through
    ``ref``), with its validated ``taskvector`` (None where the command needs none)."""

    task: str
    model: MaeVQGAN = field(repr=False, compare=False)
    ref: ModelRef
    fingerprint: str
    taskvector: TaskVector | None = field(default=None, repr=False, compare=False)

    @property
    def model_name(self) -> str:
        return self.model.cfg.name

    def with_taskvector(self, taskvec: TaskVector | str | os.PathLike | None = None,
                        variant: str = "paper") -> "ResolvedTask":
        """This task with ``taskvec`` (a TaskVector, a file, or None for the shipped ``variant``
        vector of the task and model), validated against the model once."""
        if isinstance(taskvec, TaskVector):
            tv = taskvec
            tv.validate(self.task, self.model, self.fingerprint)
        else:
            tv = load_taskvector(self.task, self.model, taskvec, variant, fingerprint=self.fingerprint)
        return dataclasses.replace(self, taskvector=tv)

    def patches(self, device=None) -> dict[BlockId, Patch]:
        """The task vector as per-block patches (empty without one)."""
        return self.taskvector.patches(device) if self.taskvector is not None else {}


def resolve_task(task: str, model: str | MaeVQGAN = DEFAULT_MODEL, taskvec: TaskVector | str | os.PathLike | None = None,
                 *, variant: str = "paper", with_taskvector: bool = True, device: str = "cpu") -> ResolvedTask:
    """Resolve ``task`` on ``model`` (a ``--model`` spec, loaded once, or a loaded model) with
    ``taskvec`` (a TaskVector, a file, or None for the shipped ``variant`` vector of the
    task and model); ``with_taskvector=False`` for commands that need none (the one-shot
    prompt, the in-context graph)."""
    try:
        task = get_task(task).name  # pairs:DIR → its registry name
    except ValueError as e:
        raise UserError(str(e)) from None
    if isinstance(model, MaeVQGAN):
        fp = model_fingerprint(model)
        net, ref = model.eval(), ModelRef(model.cfg.name, None, model.cfg.name, fp)
    else:
        net, ref, fp = load_model_ref(model, device)
    deployed = ResolvedTask(task, net, ref, fp)
    return deployed.with_taskvector(taskvec, variant) if with_taskvector else deployed
