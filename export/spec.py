"""The deployed graph's I/O contract, named once (STYLE §3).

Loaders read these back from the ONNX ``metadata_props`` / JSON sidecar instead of
repeating string literals.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from taskvec.geometry import CELL

GraphKind = Literal["task", "in-context", "switchable"]
GRAPH_KINDS: tuple[str, ...] = ("task", "in-context", "switchable")
OPSET = 17
PRODUCER = "taskvec-export"


@dataclass(frozen=True)
class IOSpec:
    """``image`` uint8 [N,111,111,3] BGR in → ``output`` uint8 [N,111,111,3] BGR out.

    Normalisation, canvas placement and de-normalisation are inside the graph; the batch
    dimension is dynamic. The in-context graph adds ``example_in``/``example_out`` of the
    same type; the switchable graph adds float32 ``tv_mul``/``tv_add`` per patched block."""

    input_name: str = "image"
    output_name: str = "output"
    example_in_name: str = "example_in"
    example_out_name: str = "example_out"
    height: int = CELL
    width: int = CELL
    channels: int = 3
    layout: str = "NHWC"
    color: str = "BGR"
    dtype: str = "uint8"
    batch_dim: str = "N"
    opset: int = OPSET

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "IOSpec":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


SPEC = IOSpec()
