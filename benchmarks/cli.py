"""``tvbench``: latency of a task's graphs on every backend, and end to end through tvrun.

A few lines of option parsing around :func:`benchmarks.bench.run_benchmark` (STYLE §4);
outputs via :mod:`benchmarks.bench_report`.
"""

from __future__ import annotations

import sys

import click

from runtime.lowlight import TRANSFER_MODES
from taskvec.errors import OneLineCommand, UserError, cli_errors

EPILOG = """\b
Examples:
  tvbench --task lowlight --json out/bench.json --markdown out/bench.md --plot out/bench.png
  tvbench --task inpainting --model random:vit_large --duration 20 --warmup 2 --frames 10
  tvbench --task lowlight --backend tensorrt,torch --precision fp16,fp32 --batch 1,4 --cuda-graphs
"""


def split_list(text: str | None, kind=str, name: str = "value") -> tuple:
    """``"1,4"`` → (1, 4); None/"" → ()."""
    if not text:
        return ()
    try:
        return tuple(kind(p.strip()) for p in text.split(",") if p.strip())
    except ValueError:
        raise UserError(f"bad --{name} {text!r}: expected a comma-separated list") from None


@click.command(cls=OneLineCommand, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"],
                                                              "max_content_width": 100})
@click.option("--task", required=True, help="task whose graph is measured (lowlight, inpainting, …)")
@click.option("--model", default="tiny", show_default=True, help="tiny | random:vit_large | PATH.safetensors")
@click.option("--backend", "backends", default=None, metavar="LIST",
              help="comma list of onnxruntime,torch,tensorrt [default: all available]")
@click.option("--precision", "precisions", default="fp32,fp16", show_default=True, metavar="LIST",
              help="fp32,fp16 (fp16 is skipped, with the reason, where the backend has no FP16 path)")
@click.option("--batch", "batches", default="1", show_default=True, metavar="LIST", help="batch sizes, e.g. 1,4")
@click.option("--iters", type=click.IntRange(min=1), default=200, show_default=True, help="timed calls per row")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None, metavar="S",
              help="instead of --iters: time each row for S seconds (at least --min-iters calls)")
@click.option("--min-iters", type=click.IntRange(min=1), default=10, show_default=True,
              help="fewest timed calls with --duration (slow models)")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True, help="untimed calls first")
@click.option("--cuda-graphs", is_flag=True, help="torch on CUDA: replay a captured CUDA graph")
@click.option("--source", default=None, metavar="URI", help="end-to-end source [default: sample:<task>]")
@click.option("--frames", type=click.IntRange(min=0), default=100, show_default=True,
              help="end-to-end frames (0 skips the end-to-end run)")
@click.option("--transfer", type=click.Choice(TRANSFER_MODES), default="denoise", show_default=True,
              help="low-light end to end: tvrun's full-resolution transfer (tvrun --help)")
@click.option("--workdir", default=None, metavar="DIR",
              help="keep exported graphs/engines here and reuse them [default: a temp folder]")
@click.option("--json", "json_path", default=None, metavar="FILE", help="write the JSON report")
@click.option("--markdown", "md_path", default=None, metavar="FILE", help="write a markdown table")
@click.option("--plot", "plot_path", default=None, metavar="PNG", help="write a latency histogram")
@cli_errors
def main(task, model, backends, precisions, batches, iters, duration, min_iters, warmup, cuda_graphs, source, frames,
         transfer, workdir, json_path, md_path, plot_path) -> None:
    """Benchmark a task's graphs: graph-only latency per backend/precision/batch (task-vector
    vs in-context, answer-cell vs full-canvas decode), end-to-end through the tvrun pipeline,
    GMAC per frame and % of the measured matrix-product peak. All comparisons are p50 ratios
    from one run."""
    from benchmarks.bench import BenchConfig, run_benchmark
    from benchmarks.bench_report import check_output_paths, to_markdown, write_json, write_markdown, write_plot

    check_output_paths([json_path, md_path, plot_path])
    cfg = BenchConfig(task=task, model=model, backends=split_list(backends, str, "backend"),
                      precisions=split_list(precisions, str, "precision"), batches=split_list(batches, int, "batch"),
                      iters=iters, duration_s=duration, min_iters=min_iters, warmup=warmup, cuda_graphs=cuda_graphs,
                      source=source, frames=frames, workdir=workdir, transfer=transfer)
    report = run_benchmark(cfg, log=lambda s: print(s, file=sys.stderr))
    if json_path:
        write_json(report, json_path)
    if md_path:
        write_markdown(report, md_path)
    if plot_path:
        write_plot(report, plot_path)
    print(to_markdown(report))


if __name__ == "__main__":
    main()
