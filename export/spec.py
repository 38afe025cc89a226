"""The deployed graph's I/O contract, named once (STYLE §3).

Loaders read these back from the ONNX ``metadata_props`` / JSON sidecar instead of
repeating string literals: :class:`GraphMetadata` is the one record of what a graph is
(read and checked in :mod:`export.metadata`). No torch here (tvrun imports it).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Literal, get_args

from taskvec.model.blocks import BlockId
from taskvec.geometry import CELL  # torch-free: loaders read this without torch

GraphKind = Literal["task", "in-context", "switchable"]
GRAPH_KINDS: tuple[str, ...] = get_args(GraphKind)
OPSET = 17
PRODUCER = "taskvec-export"


@dataclass(frozen=True)
class IOSpec:
    """``image`` uint8 [N,111,111,3] BGR in → ``output`` uint8 [N,111,111,3] BGR out.

    Normalisation, canvas placement and de-normalisation are inside the graph; the batch
    dimension is dynamic. The in-context graph adds ``example_in``/``example_out`` of the
    same type; the switchable graph adds float32 ``tv/<stage>/bNN/mul`` and ``…/add`` per block."""

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


@dataclass(frozen=True)
class GraphMetadata:
    """What a graph is, written once by the exporter into the ONNX ``metadata_props``
    (``taskvec.<field>``) and the JSON sidecar (the same keys at the top level), and read
    back by every loader (:mod:`export.metadata`).

    Strings are stored as they are, the other fields as JSON. A field missing from a file
    written by an older exporter takes its default (``decode`` "": derived from ``halo``)."""

    task: str
    graph: str = "task"
    model: str = ""  # the --model spec it was exported from
    model_name: str = ""  # the model's config name
    model_fingerprint: str = ""  # sha256 of the weights
    head: str = ""  # "vq" or "pixel"
    taskvector_fingerprint: str = ""
    taskvector_method: str = ""
    site_count: int = 0
    patched_blocks: tuple[str, ...] = ()  # "enc/b07", … (BlockId's str)
    switch_inputs: tuple[str, ...] = ()  # the switchable graph's mul/add inputs
    halo: int = 0
    decode: str = ""  # "answer" | "halo" | "full"; "" before the choice existed
    io_spec: IOSpec = SPEC
    opset: int = OPSET
    producer: str = PRODUCER
    producer_version: str = ""
    task_identity: dict = dataclasses.field(default_factory=dict)  # pairs tasks: name, sha256 of the pairs, metric
    example_pair: str = ""  # a pairs task's in-context graph: the baked example pair's name

    @property
    def baked(self) -> bool:
        """A pairs task's in-context graph with its example pair baked in: its only input is
        the image, so it runs wherever a task graph does."""
        return self.graph == "in-context" and bool(self.example_pair)

    @property
    def decode_kind(self) -> str:
        """The VQ head's decode, also for graphs written before ``decode`` was recorded."""
        return self.decode or ("halo" if self.halo else "answer")

    @property
    def input_names(self) -> list[str]:
        if self.baked:  # its example pair is constants
            return [self.io_spec.input_name]
        return input_names(self.graph, self.switch_inputs, self.io_spec)

    def to_dict(self) -> dict:
        """JSON-ready values (the sidecar's top-level keys)."""
        d = dataclasses.asdict(self)
        d["patched_blocks"], d["switch_inputs"] = list(self.patched_blocks), list(self.switch_inputs)
        for key in ("task_identity", "example_pair"):  # pairs tasks only: built-in graphs' metadata unchanged
            if not d[key]:
                del d[key]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "GraphMetadata":
        """From a sidecar (or any dict holding the keys); other keys are ignored. ValueError
        when ``task`` is missing or a value has the wrong type."""
        if not isinstance(d, dict) or not d.get("task"):
            raise ValueError("no task")
        kw: dict = {}
        for f in dataclasses.fields(cls):
            if f.name not in d:
                continue
            v = d[f.name]
            if f.name == "io_spec":
                if not isinstance(v, dict):
                    raise ValueError("io_spec")
                v = IOSpec.from_dict(v)
            elif f.name in ("patched_blocks", "switch_inputs"):
                if not isinstance(v, (list, tuple)):
                    raise ValueError(f.name)
                v = tuple(str(x) for x in v)
            elif f.name in ("site_count", "halo", "opset"):
                v = int(v)
            elif f.name == "task_identity":
                if not isinstance(v, dict):
                    raise ValueError(f.name)
            else:
                v = str(v)
            kw[f.name] = v
        return cls(**kw)

    def to_props(self) -> dict[str, str]:
        """``metadata_props`` entries: ``taskvec.<field>`` → string (JSON for non-strings)."""
        return {META_PREFIX + k: v if isinstance(v, str) else json.dumps(v) for k, v in self.to_dict().items()}

    @classmethod
    def from_props(cls, props: dict[str, str]) -> "GraphMetadata | None":
        """From ``metadata_props`` (all entries; non-taskvec ones are ignored); None when the
        graph has no taskvec metadata. ValueError for an unreadable value."""
        raw = {k[len(META_PREFIX):]: v for k, v in props.items() if k.startswith(META_PREFIX)}
        if not raw.get("task"):
            return None
        strings = {f.name for f in dataclasses.fields(cls) if f.type == "str"}
        return cls.from_dict({k: v if k in strings else json.loads(v) for k, v in raw.items()})


META_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(GraphMetadata))


PatchKind = Literal["mul", "add"]


def patch_name(bid: BlockId, kind: PatchKind) -> str:
    """Graph name of one block's patch — the wrapper's buffer, then the task graph's
    initializer and node, the switchable graph's input: ``tv/<block>/<kind>``, e.g.
    ``tv/enc/b07/mul``."""
    return f"tv/{bid}/{kind}"


def parse_patch_name(name: str) -> tuple[BlockId, PatchKind] | None:
    """``tv/enc/b07/mul`` → (BlockId("enc", 7), "mul"); None if ``name`` is not a patch name."""
    head, _, rest = name.partition("/")
    block, _, kind = rest.rpartition("/")
    if head != "tv" or kind not in ("mul", "add"):
        return None
    try:
        return BlockId.parse(block), kind  # type: ignore[return-value]
    except ValueError:
        return None


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
