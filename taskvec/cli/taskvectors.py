"""``taskvec collect | search | evaluate | figure`` — thin shells over importable functions.

Registered on the ``taskvec`` group by :mod:`taskvec.cli`. Every command shows progress
bars, ends bad input with one ``error: …`` line and exit status 2, and writes its
output files atomically (nothing is left behind on failure).
"""

from __future__ import annotations

import json
from typing import get_args

import click

from taskvec.cli.options import model_option, task_option
from taskvec.errors import CommonOptionsCommand, UserError, atomic_path, cli_errors
from taskvec.data.tasks import Variant
from taskvec.search import METHODS, REWARDS
from taskvec.vectors.sites import GRANULARITIES

IMAGES_HELP = (
    "image folder, or packaged:train / packaged:val (crops of the packaged photos; procedural "
    "scenes with masks for segmentation). Segmentation folders: DIR/images + DIR/masks, or a VOC tree. "
    "With --task pairs:DIR: train, val or all (its pairs split by name; default: collect train, search all, "
    "evaluate/figure val)"
)
images_option = click.option("--images", default=None, help=IMAGES_HELP + " [required for built-in tasks]")
pool_option = click.option("--pool", default=512, show_default=True, type=click.IntRange(min=1), help="images drawn from packaged:* sources")
dist_timeout_option = click.option("--dist-timeout", default=600.0, show_default=True, metavar="SECONDS",
                                   help="under torchrun: give up on ranks that cannot be reached (or stall) this long")
variant_option = click.option("--variant", type=click.Choice(get_args(Variant)), default="paper", show_default=True,
                              help="task construction: the paper's (e.g. 0.5·image) or the realistic one (gamma, gain, noise)")


def _out_path(path: str, suffix: str) -> None:
    if not path.endswith(suffix):
        raise UserError(f"{path}: the output must end in {suffix}")


@click.command(cls=CommonOptionsCommand)
@task_option
@images_option
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="means file (.safetensors + .json)")
@model_option
@click.option("--n", "n", default=512, show_default=True, type=click.IntRange(min=1), help="in-context canvases to average over (in total)")
@click.option("--batch", default=64, show_default=True, type=click.IntRange(min=1), help="canvases per forward (kept from the file on --resume)")
@click.option("--seed", default=0, show_default=True)
@pool_option
@click.option("--resume", is_flag=True, help="continue the collection in OUT up to --n canvases (same result as one run)")
@click.option("--save-every", default=30.0, show_default=True, metavar="SECONDS", help="save the means so far this often")
@variant_option
@dist_timeout_option
@cli_errors
def collect(task, images, out, model, n, batch, seed, pool, resume, save_every, variant, dist_timeout) -> None:
    """Average every head's output per canvas token over in-context prompts of TASK.

    Each canvas holds an example pair and a query with the answer cell masked (the
    in-context layout), drawn from IMAGES. The means are saved every --save-every
    seconds and on Ctrl-C, so an interrupted run continues with --resume. Under `torchrun
    --nproc-per-node N -m taskvec.cli collect …` the canvases are shared among the N
    processes (rank 0 writes); a run may resume with another N."""
    from taskvec.distributed import cli_session
    from taskvec.vectors.pipeline import run_collect

    _out_path(out, ".safetensors")
    with cli_session(dist_timeout) as dist:
        rm = run_collect(task, images, out, model, n, batch, seed, pool, resume, variant, dist, save_every)
        if dist.is_main:
            procs = f", {dist.world_size} processes" if dist.active else ""
            click.echo(f"wrote {out} ({rm.n_seen} canvases{procs})")


@click.command(cls=CommonOptionsCommand)
@task_option
@images_option
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="task-vector file (.safetensors; .json and .png beside it)")
@click.option("--method", type=click.Choice(METHODS), default="reinforce", show_default=True)
@click.option("--granularity", type=click.Choice(GRANULARITIES), default="region", show_default=True,
              help="site = head (all tokens), head×region (cls/query/answer), or head×token")  # fmt: skip
@click.option("--steps", type=click.IntRange(min=1), default=None, help="REINFORCE steps / GRS max rounds (default: the method's)")
@click.option("--seed", default=0, show_default=True, help="same seed → identical result")
@click.option("--means", "means_file", type=click.Path(dir_okay=False), help="means from `taskvec collect` (default: collect --n-means now)")
@click.option("--n-means", default=512, show_default=True, type=click.IntRange(min=1), help="canvases for the means when --means is not given")
@click.option("--reward", type=click.Choice(REWARDS), default="auto", show_default=True,
              help="metric: PSNR (IoU for segmentation); mse: −normalised MSE; changed: PSNR over the "
                   "pixels the task changes (the hole); auto: changed for in-painting, mse for colorization, else metric")  # fmt: skip
@click.option("--k", type=click.IntRange(min=2), default=None, help="REINFORCE: site-sets per step")
@click.option("--r", type=click.IntRange(min=1), default=None, help="REINFORCE: training queries per step")
@click.option("--init-logit", type=click.FloatRange(-20, 20), default=None,
              help="REINFORCE: starting logit of every site (default −1, p≈0.27; lower starts sparser)")
@model_option
@pool_option
@variant_option
@dist_timeout_option
@cli_errors
def search(task, images, out, method, granularity, steps, seed, means_file, n_means, reward, k, r, init_logit, model,
           pool, variant, dist_timeout) -> None:
    """Search which head outputs to patch so the zero-shot model does TASK.

    Writes the task vector, its JSON sidecar and a PNG of the search curve. The image
    pool is split 75/25 into training and validation queries (a pairs task: its own split
    by name, means from its train pairs). Under `torchrun
    --nproc-per-node N -m taskvec.cli search …` every search step's forwards are shared
    among the N processes; the same seed gives the same vector as one process."""
    from taskvec.distributed import cli_session
    from taskvec.vectors.pipeline import run_search_cli

    _out_path(out, ".safetensors")
    with cli_session(dist_timeout) as dist:
        tv = run_search_cli(task, images, out, method, granularity, steps, seed, means_file, n_means, reward,
                            model, pool, variant, dist, k=k, r=r, init_logit=init_logit)  # fmt: skip
        if dist.is_main:
            click.echo(f"wrote {out} ({tv.num_sites} sites, {method}, val {tv.meta['metrics'].get('val', float('nan')):.4g})")


@click.command(cls=CommonOptionsCommand)
@task_option
@images_option
@click.option("--json", "json_out", required=True, type=click.Path(dir_okay=False), help="results file")
@click.option("--taskvec", "taskvec_file", type=click.Path(dir_okay=False), help="task vector (default: the shipped one)")
@click.option("--cma", "cma_file", type=click.Path(dir_okay=False), help="CMA vector (default: searched now)")
@click.option("--grs", "grs_file", type=click.Path(dir_okay=False), help="GRS vector (default: searched now)")
@click.option("--n", "n", default=96, show_default=True, type=click.IntRange(min=2), help="held-out queries (packaged:* sources)")
@click.option("--seed", default=1, show_default=True, help="seed of the held-out crops/scenes and task parameters")
@click.option("--train-images", default=None, help="images for on-the-fly CMA/GRS searches [packaged:train; a pairs task: train]")
@click.option("--skip-baselines", is_flag=True, help="leave out the CMA and GRS rows unless --cma/--grs give them")
@model_option
@cli_errors
def evaluate(task, images, json_out, taskvec_file, cma_file, grs_file, n, seed, train_images, skip_baselines,
             model) -> None:
    """Compare zero-shot, one-shot, CMA, GRS and the task vector on held-out IMAGES.

    One-shot prompts take their example pair from another held-out image. Prints a
    table and writes the rows as JSON."""
    from taskvec.evaluation.evaluate import finite_results, format_table, run_evaluate

    _out_path(json_out, ".json")
    res = run_evaluate(task, images, model, taskvec_file, cma_file, grs_file, n, seed, train_images, skip_baselines)
    with atomic_path(json_out) as tmp:
        tmp.write_text(json.dumps(finite_results(res, json_out), indent=2, allow_nan=False) + "\n")
    click.echo(format_table([res]))
    click.echo(f"wrote {json_out}")


@click.command(cls=CommonOptionsCommand)
@task_option
@images_option
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG grid")
@click.option("--rows", default=6, show_default=True, type=click.IntRange(1, 64), help="images (one row each)")
@click.option("--taskvec", "taskvec_file", type=click.Path(dir_okay=False), help="task vector (default: the shipped one)")
@click.option("--cma", "cma_file", type=click.Path(dir_okay=False), help="CMA vector (default: searched now)")
@click.option("--grs", "grs_file", type=click.Path(dir_okay=False), help="GRS vector (default: searched now)")
@click.option("--seed", default=1, show_default=True)
@click.option("--train-images", default=None, help="images for on-the-fly CMA/GRS searches [packaged:train; a pairs task: train]")
@click.option("--skip-baselines", is_flag=True, help="leave out the CMA and GRS columns unless --cma/--grs give them")
@model_option
@cli_errors
def figure(task, images, out, rows, taskvec_file, cma_file, grs_file, seed, train_images, skip_baselines, model) -> None:
    """Side-by-side grid: query | zero-shot | one-shot | CMA | GRS | task vector | target."""
    from taskvec.evaluation.figure import run_figure

    _out_path(out, ".png")
    run_figure(task, images, out, model, rows, taskvec_file, cma_file, grs_file, seed, train_images, skip_baselines)
    click.echo(f"wrote {out}")


COMMANDS = [collect, search, evaluate, figure]
