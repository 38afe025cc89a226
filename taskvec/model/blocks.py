"""The name of an attention block, written and parsed in one place (no torch).

``BlockId("enc", 7)`` is written ``enc/b07``: in task-vector and running-mean files
(``enc/b07/mul``), in site names (``enc/b07/h03/query``) and in the exported graph's patch
constants (``tv/enc/b07/mul``, :func:`export.spec.patch_name`). :meth:`BlockId.parse` is
the one parser of that text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Stage = Literal["enc", "dec"]
STAGES: tuple[str, ...] = get_args(Stage)


@dataclass(frozen=True, order=True)
class BlockId:
    """One attention block: ``stage`` is "enc" or "dec", ``block`` its depth index."""

    stage: Stage
    block: int

    def __str__(self) -> str:
        return f"{self.stage}/b{self.block:02d}"

    @classmethod
    def parse(cls, text: str) -> "BlockId":
        """``enc/b07`` → ``BlockId("enc", 7)``; ValueError for anything else."""
        stage, sep, b = text.partition("/")
        if not sep or stage not in STAGES or not b.startswith("b") or not b[1:].isdigit():
            raise ValueError(f"not a block name: {text!r} (expected enc/bNN or dec/bNN)")
        return cls(stage, int(b[1:]))  # type: ignore[arg-type]
