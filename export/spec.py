"""The deployed graph's I/O contract, named once (STYLE §3).

Loaders read these back from the ONNX ``metadata_props`` / JSON sidecar instead of
repeating string literals.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, get_args

from taskvec.geometry import CELL

GraphKind = Literal["task", "in-context", "switchable"]
GRAPH_KINDS: tuple[str, ...] = get_args(GraphKind)
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


# ---------------------------------------------------------------------------------
# Names written into (and read back from) the exported graphs

FLOAT_OUTPUT = "answer"
"""Debug output: the float answer [N,3,111,111] RGB in [0,1] before quantisation. The
exporter checks it, then drops it from the deployed graph's outputs."""

META_PREFIX = "taskvec."
META_KEYS: tuple[str, ...] = (
    "task",
    "graph",
    "model",
    "model_name",
    "model_fingerprint",
    "head",
    "taskvector_fingerprint",
    "taskvector_method",
    "site_count",
    "patched_blocks",
    "switch_inputs",
    "halo",
    "io_spec",
    "opset",
    "producer",
    "producer_version",
    "task_identity",  # pairs tasks only: name, sha256 of the pairs, metric (taskvec.data.pairs)
    "example_pair",  # in-context graph of a pairs task: the baked example pair's name
)

JSON_META_KEYS = frozenset({"site_count", "patched_blocks", "switch_inputs", "halo", "io_spec", "opset",
                            "task_identity"})


def patch_name(stage: str, block: int, kind: Literal["mul", "add"]) -> str:
    """Graph name of one block's patch: node and initializer in the task graph, input in
    the switchable graph — e.g. ``tv/enc/b07/mul``."""
    return f"tv/{stage}/b{block:02d}/{kind}"


def parse_patch_name(name: str) -> tuple[str, int, str] | None:
    """``tv/enc/b07/mul`` → ("enc", 7, "mul"); None if ``name`` is not a patch name."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "tv" or parts[1] not in ("enc", "dec") or parts[3] not in ("mul", "add"):
        return None
    if not parts[2].startswith("b") or not parts[2][1:].isdigit():
        return None
    return parts[1], int(parts[2][1:]), parts[3]


def onnx_filename(task: str, graph: str = "task") -> str:
    """``T.onnx`` for the task graph, ``T.in-context.onnx`` / ``T.switchable.onnx`` else."""
    if graph not in GRAPH_KINDS:
        raise ValueError(f"unknown graph {graph!r}; choose from {', '.join(GRAPH_KINDS)}")
    return f"{task}.onnx" if graph == "task" else f"{task}.{graph}.onnx"


def sidecar_filename(task: str, graph: str = "task") -> str:
    return onnx_filename(task, graph)[: -len(".onnx")] + ".json"


def input_names(graph: str, switch_inputs: list[str] | tuple[str, ...] = (), spec: IOSpec = SPEC) -> list[str]:
    if graph == "in-context":
        return [spec.input_name, spec.example_in_name, spec.example_out_name]
    if graph == "switchable":
        return [spec.input_name, *switch_inputs]
    return [spec.input_name]
