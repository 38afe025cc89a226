"""``taskvec``: offline work on visual-prompting models (DESIGN §8).

Each command is a few lines of option parsing around an importable function.
"""

from __future__ import annotations

import json
import os
import shlex
import sys

if "WORLD_SIZE" in os.environ:  # under torchrun (taskvec.distributed): c10d's native log lines and stack
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "FATAL")  # dumps on a timeout would break one-line errors

import click

from taskvec.cli.options import MODEL_HELP, model_option, task_option  # noqa: F401
from taskvec.model.config import list_configs
from taskvec.errors import OneLineGroup, cli_errors


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def main() -> None:
    """Visual task vectors: prompt, train, collect, search, evaluate and plot.

    \b
    Examples:
      taskvec info
      taskvec prompt --task lowlight --query photo.jpg --out answer.png
      taskvec train --config tiny --out runs/tiny --steps 3000
    """


@main.command()
@model_option
@cli_errors
def info(model: str) -> None:
    """Print the model's config, parameter count and weight fingerprint as JSON."""
    from taskvec.model.checkpoint import model_info

    click.echo(json.dumps(model_info(model), indent=2))


@main.command()
@click.argument("src", type=click.Path(dir_okay=False))
@click.argument("dst", type=click.Path(dir_okay=False))
@click.option("--config", type=click.Choice(list_configs()), default=None, help="override the architecture named in the checkpoint")
@cli_errors
def convert(src: str, dst: str, config: str | None) -> None:
    """Convert the published MAE-VQGAN checkpoint SRC (.pth) to DST (.safetensors + .json card).

    The pickle is read with torch.load(weights_only=True), allowing only argparse.Namespace
    besides tensors; any other object is refused."""
    from taskvec.model.checkpoint import convert_checkpoint

    card = convert_checkpoint(src, dst, config)
    click.echo(f"wrote {dst} ({card['config']['name']}, fingerprint {card['fingerprint'][:16]}…)")


@main.command()
@task_option
@click.option("--query", required=True, type=click.Path(dir_okay=False), help="query image")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="the answer: the 111×111 cell, or the query's size with --answer-size query")
@click.option("--example-in", type=click.Path(dir_okay=False), help="example input (default: a built-in pair)")
@click.option("--example-out", type=click.Path(dir_okay=False), help="example output")
@click.option("--canvas", type=click.Path(dir_okay=False), help="also write the whole 224×224 canvas")
@click.option("--zero-shot", is_flag=True, help="no example: the patched zero-shot model (task vector)")
@click.option("--taskvec", "taskvec_file", type=click.Path(dir_okay=False), help="task-vector file (default: the shipped one)")
@click.option("--seed", default=0, show_default=True, help="seed of the built-in example / task corruption")
@click.option("--fit", type=click.Choice(("letterbox", "crop", "squash")), default="letterbox", show_default=True,
              help="how each image goes into its 111×111 cell: letterbox = whole image, aspect kept, edges "
                   "mirrored into the rest; crop = the centred square; squash = resized whatever its aspect "
                   "(the reference code's way)")
@click.option("--answer-size", type=click.Choice(("cell", "query")), default="cell", show_default=True,
              help="cell: the 111×111 answer; query: the answer at the query's resolution (the letterbox "
                   "padding cut off; with --fit crop, the centred square)")
@model_option
@cli_errors
def prompt(task, query, out, example_in, example_out, canvas, zero_shot, taskvec_file, seed, fit, answer_size,
           model) -> None:
    """Answer QUERY by visual prompting (one example pair) or with a task vector (--zero-shot).

    The query is used as it is (it is the task's input, e.g. a dark photo for lowlight)."""
    from taskvec.vectors.prompting import run_prompt

    run_prompt(task, query, out, example_in, example_out, canvas, zero_shot, taskvec_file, seed, model, fit=fit,
               answer_size=answer_size)
    click.echo(f"wrote {out}")


@main.command()
@click.option("--config", default="tiny", show_default=True, type=click.Choice(list_configs()), help="model config")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="run folder: checkpoints, history, weights")
@click.option("--steps", default=3000, show_default=True, type=click.IntRange(min=1), help="optimizer steps")
@click.option("--batch", default=32, show_default=True, type=click.IntRange(min=4), help="canvases per step (a multiple of 4)")
@click.option("--lr", default=1e-3, show_default=True, type=click.FloatRange(0, 1, min_open=True))
@click.option("--seed", default=0, show_default=True)
@click.option("--images", type=click.Path(file_okay=False), help="extra folder of your own training images")
@click.option("--bank", type=click.Path(exists=True), help="image bank from `taskvec data fetch` or `data pack` (its train split)")
@click.option("--resume", is_flag=True, help="continue from OUT/last.pt exactly")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
@click.option("--eval-every", default=500, show_default=True, type=click.IntRange(min=1), help="validate on held-out photos every N steps")
@click.option("--time-budget", type=click.FloatRange(0, min_open=True), default=None, help="minutes; stop early (and save) when reached")
@click.option("--init", type=click.Path(dir_okay=False, exists=True), default=None, help="start from these weights (fine-tune)")
@click.option("--changed-weight", default=0.0, show_default=True, type=click.FloatRange(0), help="extra loss weight on the answer pixels the task changes")
@click.option("--grad-weight", default=0.0, show_default=True, type=click.FloatRange(0), help="weight of an L1 loss on the answer's error gradients (against blocky fills)")
@cli_errors
def train(config, out, steps, batch, lr, seed, images, bank, resume, device, eval_every, time_budget, init, changed_weight, grad_weight) -> None:
    """Train a pixel-head visual-prompting model on packaged photos and procedural scenes."""
    from taskvec.model.checkpoint import resolve_device
    from taskvec.model.train import TrainConfig, train as run_train

    device = resolve_device(device)
    if batch % 4:
        raise click.BadParameter("must be a multiple of 4 (one share per task)", param_hint="--batch")
    cfg = TrainConfig(
        config=config, steps=steps, batch=batch, lr=lr, seed=seed, images=images, bank=bank, eval_every=eval_every,
        time_budget_min=time_budget, init=init, changed_weight=changed_weight, grad_weight=grad_weight,
    )
    cfg.extra["command"] = shlex.join(["taskvec", *sys.argv[1:]])
    path = run_train(cfg, out, resume=resume, device=device)
    click.echo(f"wrote {path}")


@main.group(cls=OneLineGroup)
def data() -> None:
    """Training images: fetch the image bank from Debian's package registry."""


@data.command()
@click.option("--out", required=True, type=click.Path(file_okay=False), help="bank folder to create (must not exist)")
@cli_errors
def fetch(out: str) -> None:
    """Download Debian's wallpaper packages and tuxpaint-stamps-default (apt-get download, dpkg -x:
    nothing is installed) and write OUT/{wallpapers,stamps}/ plus OUT/manifest.json (sha256,
    source package, pixel size, licence, validation split by picture).

    Train on it with `taskvec train --bank OUT`. Without network access this ends with one line;
    `taskvec train --images DIR` takes any folder of your own photos instead."""
    from taskvec.data.fetch import fetch as run_fetch

    entries = run_fetch(out)
    n = {k: sum(e.kind == k for e in entries) for k in ("wallpaper", "stamp")}
    out_ = {k: sum(e.kind == k and e.split != "train" for e in entries) for k in n}
    click.echo(f"wrote {out}: {n['wallpaper']} wallpapers ({out_['wallpaper']} held out for validation and test), "
               f"{n['stamp']} stamps ({out_['stamp']} held out)")


@data.command()
@click.argument("bank", type=click.Path(file_okay=False, exists=True))
@click.argument("out", type=click.Path(dir_okay=False))
@cli_errors
def pack(bank: str, out: str) -> None:
    """Pack the image bank BANK into one compact OUT.tar (to carry to a GPU machine);
    `taskvec train --bank OUT.tar` reads it as it is."""
    from taskvec.data.bank import pack_bank

    size = pack_bank(bank, out)
    click.echo(f"wrote {out} ({size / 2**20:.1f} MiB)")


@data.command("example-pairs")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="pairs folder to create (must not exist)")
@click.option("--kind", type=click.Choice(("dusk", "lowlight", "masks")), default="dusk", show_default=True,
              help="dusk: gamma 1.6, gain 0.4, blue cast; lowlight: 0.5·photo (the built-in task); masks: "
                   "scenes and their foreground masks")
@click.option("--n", "n", default=16, show_default=True, type=click.IntRange(min=1), help="pairs")
@click.option("--photos", type=click.Choice(("train", "val")), default="val", show_default=True,
              help="which packaged photos the crops come from (val: never seen by the tiny model)")
@click.option("--seed", default=0, show_default=True)
@cli_errors
def example_pairs(out: str, kind: str, n: int, photos: str, seed: int) -> None:
    """Write a folder of example pairs, OUT/input/NAME.png ↔ OUT/target/NAME.png, made from the
    packaged photos — to try `--task pairs:OUT` without pairs of your own."""
    from taskvec.data.pairs_demo import write_example_pairs

    click.echo(f"wrote {write_example_pairs(out, kind, n, photos, seed)} ({n} {kind} pairs)")


def _register_optional_commands() -> None:
    """Commands that live in their own modules (collect/search/evaluate/figure)."""
    from taskvec.cli import taskvectors as cli_taskvectors

    for cmd in cli_taskvectors.COMMANDS:
        main.add_command(cmd)


_register_optional_commands()

if __name__ == "__main__":
    main()
