"""``tvrun``: run a task graph live on a camera, a file, a stream or the sample clip.

A few lines of option parsing around :func:`runtime.pipeline.run` (STYLE §4). Without
``--engine``/``--onnx`` the default model's graph for the task is exported on first use
into a cache (``~/.cache/taskvec/`` or ``--cache-dir``), keyed by the model's weight
fingerprint and the task, and reused afterwards.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import click

from taskvec.errors import OneLineCommand, UserError, one_line

TASKS = ("lowlight", "inpainting")

EPILOG = """\b
Examples:
  tvrun --source sample:lowlight --task lowlight --headless --output out/demo.mp4 \\
        --stats out/stats.json --before-after out/before_after.png
                                       the demo: a generated dark clip, no camera needed
  tvrun --camera 0 --task lowlight     USB webcam (/dev/video0) in a window; Esc or q quits
  tvrun --source csi://0 --task lowlight --engine lowlight.trt10.orin.fp16.engine
                                       Jetson CSI camera (needs OpenCV with GStreamer: JetPack's)
  tvrun --source clip.mp4 --task lowlight --output out/bright.mp4 --headless --tiles 2x2
  tvrun --source rtsp://user:pw@10.0.0.7:8554/cam --task lowlight --onnx lowlight.onnx
  tvrun --source sample:inpainting --task inpainting --mask-rect 280,200,80,60 --headless --output out/fill.mp4
  tvrun --camera 0 --task lowlight --transfer temporal --noise-k 2.5
                                       static camera: average over frames where nothing moves
  tvrun --camera 0 --task inpainting   draw the hole with the left mouse button, right button clears
"""


def default_runtime_taskvector(task: str, model: str) -> Path:
    """The shipped vector tvrun uses when none is given: the realistic variant where shipped
    (live video is darker and noisier than the paper's 0.5·image), else the paper's."""
    from taskvec.checkpoint import load_model
    from taskvec.taskvector import runtime_taskvector_path

    return runtime_taskvector_path(task, load_model(model).cfg.name)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "taskvec"


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cached_onnx(task: str, model: str = "tiny", cache_dir: str | os.PathLike[str] | None = None,
                taskvec: str | None = None, log=print) -> Path:
    """The task graph for ``model`` in the cache, exported on first use (export_task).

    Key: ``{model name}-{weights fingerprint[:16]}[-tv{task-vector file digest[:12]}]/{task}``;
    an entry whose sidecar names other weights is exported again."""
    import json

    from taskvec.checkpoint import load_model, model_fingerprint

    net = load_model(model)
    fp = model_fingerprint(net)
    key = f"{net.cfg.name}-{fp[:16]}"
    if taskvec:
        if not Path(taskvec).is_file():
            raise UserError(f"task vector {taskvec} does not exist")
        key += f"-tv{_file_digest(taskvec)[:12]}"
    folder = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    folder = folder / key / task
    onnx_path = folder / f"{task}.onnx"
    sidecar = onnx_path.with_suffix(".json")
    if onnx_path.is_file() and sidecar.is_file():
        try:
            if json.loads(sidecar.read_text()).get("model_fingerprint") == fp:
                return onnx_path
        except (OSError, ValueError):
            pass
    try:
        from export.onnx_export import export_task
    except ImportError as e:
        raise UserError(f"cannot export the {task} graph: export.onnx_export is unavailable ({e}); pass --onnx") from None
    log(f"exporting the {task} graph of {net.cfg.name} to {folder} (first use; cached afterwards)…")
    result = export_task(task, model=net, taskvec=taskvec, out_dir=folder, graph="task", check=True)
    return Path(result.onnx_path)


def check_graph_options(task: str, engine: str | None, onnx: str | None, backend: str) -> None:
    """Refuse, before opening anything, a --onnx graph that is not tvexport's graph for ``task``
    (export.check.verify_task_graph) and an --engine that is missing or cannot run here."""
    if onnx:
        from export.check import verify_task_graph

        verify_task_graph(onnx, task)
    if engine:
        path = Path(engine)
        if not path.is_file():
            raise UserError(f"engine {engine} does not exist")
        if path.stat().st_size == 0:
            raise UserError(f"engine {engine} is empty")
        if backend in ("auto", "tensorrt"):
            from runtime.backends import available_backends

            if "tensorrt" not in available_backends():
                raise UserError(f"--engine {engine} needs TensorRT and a CUDA GPU, which are not available here; "
                                "run the exported graph with --onnx FILE instead")
        elif backend != "tensorrt":
            raise UserError(f"--engine is for the tensorrt backend, not --backend {backend}")


@click.command(cls=OneLineCommand, epilog=EPILOG,
               context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--camera", type=int, default=None, metavar="N", help="V4L2 camera index (same as --source N)")
@click.option("--source", default=None, metavar="URI",
              help="0, /dev/videoN, csi://N, a video file, an image folder, rtsp://…, sample:lowlight|sample:inpainting")
@click.option("--task", required=True, type=click.Choice(TASKS), help="what to do to every frame")
@click.option("--engine", type=click.Path(dir_okay=False), default=None, help="TensorRT engine (tvexport --engine)")
@click.option("--onnx", type=click.Path(dir_okay=False), default=None, help="exported ONNX graph (tvexport)")
@click.option("--model", default="tiny", show_default=True,
              help="model whose graph is exported and cached when no --engine/--onnx is given (also for --backend torch)")
@click.option("--taskvec", type=click.Path(dir_okay=False), default=None,
              help="task-vector file (default: the task's shipped vector)")
@click.option("--backend", type=click.Choice(("auto", "tensorrt", "onnxruntime", "torch")), default="auto",
              show_default=True, help="auto picks TensorRT engine > ORT TensorRT/CUDA > ORT CPU > torch")
@click.option("--headless", is_flag=True, help="no window (servers, benchmarks)")
@click.option("--output", default=None, metavar="PATH", help="write frames to a video (.mp4/.avi) or an image folder")
@click.option("--overlay", is_flag=True, help="also draw the FPS overlay into --output (always in the window)")
@click.option("--frames", type=click.IntRange(min=1), default=None, metavar="N", help="stop after N frames")
@click.option("--loop", is_flag=True, help="replay a file or folder source forever (stop with --frames or Ctrl-C)")
@click.option("--reconnect", default=3, show_default=True, type=click.IntRange(0, 100),
              help="live sources (camera, RTSP): reopen this many times after they stop delivering frames")
@click.option("--stats", "stats_path", default=None, metavar="JSON", help="write FPS, drops and per-stage latency")
@click.option("--mask", type=click.Path(dir_okay=False), default=None,
              help="in-painting hole: image, white = hole (resized to the frame)")
@click.option("--mask-rect", default=None, metavar="x,y,w,h", help="in-painting hole as a rectangle in pixels")
@click.option("--tiles", default=None, metavar="RxC", help="low-light: run RxC overlapping full-resolution tiles")
@click.option("--gain", "gain_mode", type=click.Choice(("luma", "rgb")), default="rgb", show_default=True,
              help="low-light: one gain per channel (carries the colour correction; +3.5 dB on the sample clip) or one for all channels (about 2 ms faster)")
@click.option("--transfer", type=click.Choice(("denoise", "temporal", "gain")), default="denoise", show_default=True,
              help="low-light: how the 111x111 answer reaches full resolution. denoise: exposure limited to the "
                   "input's darkness, detail kept only above the estimated noise, then the gain map; temporal: "
                   "the same after a motion-masked recursive average over frames (video); gain: the old gain map "
                   "on the raw frame (noise amplified)")
@click.option("--noise-k", type=click.FloatRange(min=0), default=None, metavar="K",
              help="low-light denoise/temporal: keep detail whose local RMS exceeds K x the noise sigma [6.0]; "
                   "higher = smoother")
@click.option("--guide-blur", type=click.FloatRange(min=0), default=None, metavar="PX",
              help="low-light denoise/temporal: Gaussian sigma (pixels) on the full-resolution luma whose detail "
                   "is kept, applied when the frame's noise sigma is >= 1 grey level; 0 = off [0.7]")
@click.option("--lift", default=None, metavar="LO,HI",
              help="low-light denoise/temporal: the graph's shadow lift is dropped while the frame needs at most "
                   "LO stops of exposure (log2 of the gain that takes its brightest pixel to the graph's), and kept "
                   "in full from HI stops [1.2,1.7]")
@click.option("--temporal-alpha", type=click.FloatRange(min=0, max=1, min_open=True), default=None, metavar="A",
              help="low-light temporal: weight of each new frame where nothing moves [0.25]")
@click.option("--before-after", default=None, metavar="PNG", help="write one input|output frame side by side")
@click.option("--cache-dir", default=None, metavar="DIR", help="where exported graphs are cached (~/.cache/taskvec)")
def main(camera, source, task, engine, onnx, model, taskvec, backend, headless, output, overlay, frames, loop,
         stats_path, mask, mask_rect, tiles, gain_mode, transfer, noise_k, lift, temporal_alpha, before_after, cache_dir,
         reconnect, guide_blur) -> None:
    """Run a task-vector filter on live video: source → graph → window/file.

    Prints which backend it picked and why, and at the end one line with frames, FPS,
    backend and the per-stage p50 latency (ms)."""
    return run_cli(camera=camera, source=source, task=task, engine=engine, onnx=onnx, model=model,
                     taskvec=taskvec, backend=backend, headless=headless, output=output, overlay=overlay,
                     frames=frames, loop=loop, stats_path=stats_path, mask=mask, mask_rect=mask_rect, tiles=tiles,
                     gain_mode=gain_mode, before_after=before_after, cache_dir=cache_dir, reconnect=reconnect,
                     transfer=transfer, noise_k=noise_k, lift=lift, temporal_alpha=temporal_alpha,
                     guide_blur=guide_blur)


def run_cli(*, camera=None, source=None, task, engine=None, onnx=None, model="tiny", taskvec=None, backend="auto",
            headless=False, output=None, overlay=False, frames=None, loop=False, stats_path=None, mask=None,
            mask_rect=None, tiles=None, gain_mode="rgb", before_after=None, cache_dir=None, reconnect=0,
            transfer="denoise", noise_k=None, lift=None, temporal_alpha=None,
            guide_blur=None) -> int:
    """The command as a function: 0 on success, 2 for bad input, 1 when a source fails mid-run."""
    from runtime.sinks import SinkError
    from runtime.sources import SourceError

    def err(msg: str, code: int) -> int:
        print(f"error: {msg}", file=sys.stderr)
        return code

    try:
        if (camera is None) == (source is None):
            raise UserError("give exactly one of --camera N or --source URI")
        if mask and mask_rect:
            raise UserError("give --mask or --mask-rect, not both")
        if task != "inpainting" and (mask or mask_rect):
            raise UserError("--mask/--mask-rect are for --task inpainting")
        if task != "lowlight" and tiles:
            raise UserError("--tiles is for --task lowlight")
        if task == "inpainting" and headless and not (mask or mask_rect):
            raise UserError("--task inpainting needs --mask FILE or --mask-rect x,y,w,h when --headless "
                            "(in a window you can draw the hole)")
        if engine and onnx:
            raise UserError("give --engine or --onnx, not both")
        check_graph_options(task, engine, onnx, backend)
        from runtime.lowlight import lowlight_params
        from runtime.predictor import make_predictor, parse_rect, parse_tiles, read_mask

        if output is not None:
            from runtime.sinks import check_output_path

            check_output_path(output)
        tile_rc = parse_tiles(tiles)
        lowlight = lowlight_params(transfer, noise_k, lift, temporal_alpha, guide_blur)
        rect = parse_rect(mask_rect) if mask_rect else None
        hole = read_mask(mask) if mask else None
    except (UserError, ValueError, SinkError) as e:
        return err(one_line(e), 2)

    from runtime.backends import open_backend
    from runtime.pipeline import run
    from runtime.sources import open_source

    try:
        src = open_source(str(camera) if camera is not None else source)
    except SourceError as e:
        return err(str(e), 2)
    try:
        try:
            factory = None
            if not onnx and not engine:
                if taskvec is None:
                    taskvec = str(default_runtime_taskvector(task, model))
                tv_file = taskvec

                def export_on_first_use() -> Path:
                    return cached_onnx(task, model, cache_dir, tv_file, log=lambda s: print(s, file=sys.stderr))

                factory = export_on_first_use
            be = open_backend(backend, onnx=onnx, engine=engine, model=model, task=task, onnx_factory=factory,
                              taskvec=taskvec)
        except (UserError, ValueError, OSError) as e:
            return err(one_line(e), 2)
        with be:
            print(f"backend: {be.name} — {be.reason}", flush=True)  # stdout: stderr is for the error line
            predictor = make_predictor(task, be, tiles=tile_rc, mask=hole, rect=rect, gain_mode=gain_mode,
                                       lowlight=lowlight)
            stats = run(src, predictor, backend_name=be.name, output=output, headless=headless, overlay=overlay,
                        frames=frames, stats_path=stats_path, before_after=before_after, loop=loop,
                        reconnect=reconnect if src.is_live else 0,
                        paint_masks=(task == "inpainting" and not headless))
    except (SourceError, SinkError) as e:
        return err(str(e), 1)
    except (UserError, ValueError) as e:
        return err(one_line(e), 2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        src.close()
    print(stats.summary_line())
    if stats.stopped_by in ("key", "interrupt"):
        print(f"stopped by {stats.stopped_by}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    main()
