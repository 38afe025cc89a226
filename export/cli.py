"""``tvexport``: export a task's zero-shot graph to ONNX (and a TensorRT engine).

A few lines of option parsing around :func:`export.onnx_export.export_task` and
:func:`export.trt.build_engine` (STYLE §4).
"""

from __future__ import annotations

import sys
import time
from typing import get_args

import click

from export.spec import GRAPH_KINDS
from export.trt import PRECISIONS
from taskvec.cli.options import model_option, task_option
from taskvec.errors import OneLineCommand, cli_errors
from taskvec.data.tasks import Variant
from taskvec.geometry import DECODE_KINDS



@click.command(cls=OneLineCommand, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@task_option
@model_option
@click.option("--taskvec", "taskvec_file", default=None, metavar="FILE",
              help="task-vector file (default: the one shipped for the task and model)")
@click.option("--out", "out_dir", default="exported", show_default=True, metavar="DIR",
              help="output folder")
@click.option("--graph", type=click.Choice(GRAPH_KINDS), default="task", show_default=True,
              help="task: zero-shot with the task vector folded in; in-context: the one-shot prompt; "
              "switchable: task-vector mul/add as inputs (one engine for every task)")
@click.option("--engine", is_flag=True, help="also build a TensorRT engine (needs TensorRT and a GPU)")
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp16", show_default=True,
              help="engine precision (LayerNorm and softmax stay FP32 under fp16)")
@click.option("--batch-max", type=click.IntRange(1, 1024), default=8, show_default=True,
              help="largest batch of the engine's optimisation profile (1..N)")
@click.option("--decode", type=click.Choice(DECODE_KINDS), default=None,
              help="VQ head: what the VQGAN decodes — answer: the answer's 7x7 latent (default); halo: the same "
                   "with --halo context tokens; full: the whole 14x14 canvas, the reference MAE-VQGAN's answer "
                   "(about 4x the decode cost). The difference from full and the MACs of each are measured and "
                   "written to the sidecar")
@click.option("--halo", type=click.IntRange(0, 7), default=None,
              help="VQ head, --decode halo: context tokens decoded around the answer's latent [1]; given alone, "
                   "it implies --decode halo")
@click.option("--no-check", is_flag=True, help="skip the ONNX Runtime vs PyTorch comparison (the ONNX checker still runs)")
@click.option("--variant", type=click.Choice(get_args(Variant)), default="paper", show_default=True,
              help="which shipped task vector when --taskvec is not given: searched on the paper's task or the "
                   "realistic one (low-light: gamma, gain, sensor noise — what tvrun uses on live video)")
@click.option("--no-slim", is_flag=True, help="leave the graph as traced (no onnxslim simplification; for debugging)")
@click.option("--trt-version", "trt_target", type=click.Choice(["10", "11"]), default="10", show_default=True,
              help="without TensorRT here: the TensorRT major the printed trtexec line targets (11.x has no "
                   "precision flags: fp16 is built from the FP16 graph written beside the ONNX file)")
@click.option("--example", default=None, metavar="NAME",
              help="pairs task, --graph in-context: the pair baked into the graph (default: its first train pair)")
@cli_errors
def main(task, model, taskvec_file, out_dir, graph, engine, precision, batch_max, decode, halo, no_check, variant,
         trt_target, no_slim, example) -> None:
    """Export TASK's graph to OUT/TASK.onnx + OUT/TASK.json (in-context/switchable:
    OUT/TASK.<graph>.onnx), check it against PyTorch, and optionally build a TensorRT engine
    OUT/TASK.trt<version>.<gpu>.<precision>.engine.

    \b
    Every export is checked: ONNX checker, graph rules, then ONNX Runtime vs PyTorch on
    random images (max-abs error printed; failure above 1e-4 in FP32).
    With --engine but no TensorRT, the ONNX graph is still written, the equivalent trtexec
    command (for --trt-version, with the builder's engine and timing-cache names) is printed
    on a line of its own, ready to paste, and tvexport exits with status 3.

    \b
    Examples:
      tvexport --task inpainting
      tvexport --task lowlight --engine --precision fp16 --batch-max 4
      tvexport --task lowlight --graph switchable --out exported/
      tvexport --task pairs:my_pairs --taskvec my_pairs.safetensors
      tvexport --task pairs:my_pairs --graph in-context      (bakes one example pair)
    """
    from export.onnx_export import export_task

    t0 = time.perf_counter()
    result = export_task(task, model=model, taskvec=taskvec_file, out_dir=out_dir, graph=graph,
                         check=not no_check, decode=decode, halo=halo, log=click.echo, variant=variant,
                         example=example, slim=not no_slim)
    click.echo(result.summary())
    if not engine:
        click.echo(f"done in {time.perf_counter() - t0:.1f} s")
        return
    from export import trt

    if not trt.tensorrt_available():
        from export.trtexec import trtexec_plan, write_trtexec_inputs

        plan = trtexec_plan(result.onnx_path, precision, batch_max, trt_version=trt_target)
        write_trtexec_inputs(plan, result.onnx_path)
        click.echo(f"# trtexec for TensorRT {plan.major}.x" + "".join(f"; {n}" for n in plan.notes) + ":")
        click.echo(plan.line)
        print(f"error: TensorRT is not installed here ({trt.INSTALL_HINT}); {result.onnx_path.name} was written, "
              "build the engine on the target with the trtexec command above", file=sys.stderr)
        sys.exit(3)
    path = trt.build_engine(result.onnx_path, precision=precision, batch_max=batch_max, log=click.echo)
    click.echo(f"wrote {path}")
    click.echo(f"done in {time.perf_counter() - t0:.1f} s")
