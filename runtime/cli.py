"""``tvrun``: run a task graph live on a camera, a file, a stream or the sample clip.

A few lines of option parsing around :func:`runtime.pipeline.run` (STYLE §4). Without
``--engine``/``--onnx`` the default model's graph for the task is exported on first use
into a cache (``~/.cache/taskvec/`` or ``--cache-dir``), keyed by the model's weight
fingerprint and the task, and reused afterwards.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click

from runtime.backends import BACKEND_KINDS
from runtime.cache import default_cache_dir, file_digest
from runtime.lowlight import GAIN_MODES, TRANSFER_MODES
from runtime.predictor import PREDICTORS
from taskvec.cli.options import TaskType
from taskvec.errors import OneLineCommand, UserError, one_line
from taskvec.model.card import DEFAULT_MODEL


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
  tvrun --source rtsp://10.0.0.7:8554/cam --input-codec h265 --latency 50 --task lowlight --headless \\
        --output rtp://10.0.0.20:5000      H.265 camera in, low-light RTP stream out
  tvrun --source rtp://@:5000 --task lowlight --output display://0
                                       receive an RTP stream (e.g. from another tvrun), show it
  tvrun --source sample:inpainting --task inpainting --mask-rect 280,200,80,60 --headless --output out/fill.mp4
  tvrun --camera 0 --task lowlight --transfer temporal --noise-k 2.5
                                       static camera: average over frames where nothing moves
  tvrun --camera 0 --task inpainting   draw the hole with the left mouse button, right button clears
  tvrun --source clip.mp4 --task pairs:my_pairs --onnx exported/pairs-my_pairs-0123456789.onnx --headless \\
        --output out/filtered.mp4        a task defined by a folder of example pairs (tvexport --task pairs:DIR)
"""


def default_runtime_taskvector(task: str, model: str) -> Path:
    """The shipped vector tvrun uses when none is given: the realistic variant where shipped
    (live video is darker and noisier than the paper's 0.5·image), else the paper's. Reads
    the model's card only (no weights)."""
    from taskvec.model.card import model_ref
    from taskvec.vectors.shipped import runtime_taskvector_path

    return runtime_taskvector_path(task, model_ref(model).name)


def cached_onnx(task: str, model: str = "tiny", cache_dir: str | os.PathLike[str] | None = None,
                taskvec: str | None = None, log=print, deployed=None) -> Path:
    """The task graph for ``model`` in the cache, exported on first use.

    Key: ``{model name}-{weights fingerprint[:16]}[-tv{task-vector file digest[:12]}]/{task}``;
    an entry whose sidecar names other weights is exported again. The fingerprint comes
    from the model's card, so a cache hit loads no weights; ``deployed`` (a callable returning
    the command's :class:`~taskvec.vectors.resolved.ResolvedTask`) is called only when the
    weights are needed (a miss, or a ``random:`` model)."""
    import json

    from taskvec.model.card import model_ref

    if taskvec and not Path(taskvec).is_file():
        raise UserError(f"task vector {taskvec} does not exist")
    def resolve_here():
        from taskvec.vectors.resolved import resolve_task

        return resolve_task(task, model, taskvec)

    resolve = deployed or functools.cache(resolve_here)  # ``deployed`` is cached by its owner

    ref = model_ref(model)
    fp = ref.fingerprint or resolve().fingerprint
    key = f"{ref.name}-{fp[:16]}"
    if taskvec:
        key += f"-tv{file_digest(taskvec)[:12]}"
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
    from export.onnx_export import ExportRequest, export_resolved

    log(f"exporting the {task} graph of {ref.name} to {folder} (first use; cached afterwards)…")
    return Path(export_resolved(resolve(), folder, ExportRequest("task"), log).onnx_path)


def graph_request(task: str, model: str | None):
    """What tvrun asks of a graph or an engine: a task graph for ``task`` with the runtime's
    I/O and, when ``--model`` was given, that model's weights (fingerprint from its card;
    the config name for ``random:`` models). No torch."""
    from export.metadata import GraphRequest
    from export.spec import SPEC

    if model is None:
        return GraphRequest(task=task, graph="task", spec=SPEC)
    from taskvec.model.card import model_ref

    ref = model_ref(model)
    return GraphRequest(task=task, graph="task", model_fingerprint=ref.fingerprint, model_name=ref.name, spec=SPEC)


def check_graph_options(task: str, engine: str | None, onnx: str | None, backend: str, model: str | None = None) -> None:
    """Refuse, before opening anything, a --onnx graph or an --engine that is not tvexport's
    graph for ``task`` (and ``model``, when given) or whose sidecar contradicts it
    (:func:`export.metadata.load_graph_metadata` / :func:`~export.metadata.load_engine_metadata`),
    and an --engine that cannot run here."""
    if onnx:
        from export.metadata import load_graph_metadata

        load_graph_metadata(onnx, graph_request(task, model))
    if engine:
        path = Path(engine)
        if not path.is_file():
            raise UserError(f"engine {engine} does not exist")
        if path.stat().st_size == 0:
            raise UserError(f"engine {engine} is empty")
        from export.metadata import load_engine_metadata

        load_engine_metadata(path, graph_request(task, model))
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
              help="0, /dev/videoN, csi://N, a video file, an image folder, rtsp://…, rtp://@:PORT, "
                   "sample:lowlight|sample:inpainting")
@click.option("--input-codec", type=click.Choice(("h264", "h265")), default=None,
              help="rtsp:// and rtp:// sources: the stream's codec [h264]")
@click.option("--latency", type=click.IntRange(0, 10000), default=None, metavar="MS",
              help="rtsp:// and rtp:// sources through GStreamer: jitter-buffer latency [200]")
@click.option("--task", required=True, type=TaskType(tuple(PREDICTORS)),
              help="what to do to every frame; pairs:DIR — a task defined by example pairs (the whole frame "
                   "through its graph: --onnx from tvexport, or --taskvec from taskvec search)")
@click.option("--engine", type=click.Path(dir_okay=False), default=None, help="TensorRT engine (tvexport --engine)")
@click.option("--onnx", type=click.Path(dir_okay=False), default=None, help="exported ONNX graph (tvexport)")
@click.option("--model", default=None,
              help="model whose graph is exported and cached when no --engine/--onnx is given (also for --backend "
                   "torch) [tiny]; with --engine/--onnx, the graph must have been exported from it")
@click.option("--taskvec", type=click.Path(dir_okay=False), default=None,
              help="task-vector file (default: the task's shipped vector)")
@click.option("--backend", type=click.Choice(BACKEND_KINDS), default="auto",
              show_default=True, help="auto picks TensorRT engine > ORT TensorRT/CUDA > ORT CPU > torch")
@click.option("--precision", type=click.Choice(("fp32", "fp16")), default="fp32", show_default=True,
              help="ONNX Runtime's TensorRT provider: build its engine in FP16 (LayerNorm kept FP32); engines "
                   "and the timing cache are kept in --cache-dir/ort-trt, so only the first launch builds")
@click.option("--headless", is_flag=True, help="no window (servers, benchmarks)")
@click.option("--output", default=None, metavar="PATH",
              help="write frames to a video (.mp4/.avi), an image folder, an RTP stream (rtp://HOST:PORT"
                   "[?codec=h265]) or show them (display://0)")
@click.option("--output-codec", type=click.Choice(("auto", "h264", "mp4v", "mjpg")), default="auto",
              show_default=True, help="video file codec: auto = H.264 (libx264 through PyAV) for .mp4/.mov/.m4v, "
                                      "MJPG for .avi; mp4v = OpenCV's MPEG-4 Part 2 (the fallback without PyAV)")
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
@click.option("--gain", "gain_mode", type=click.Choice(GAIN_MODES), default="rgb", show_default=True,
              help="low-light: one gain per channel (carries the colour correction; +3.5 dB on the sample clip) or one for all channels (about 2 ms faster)")
@click.option("--transfer", type=click.Choice(TRANSFER_MODES), default="denoise", show_default=True,
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
         reconnect, guide_blur, precision, output_codec, input_codec, latency) -> None:
    """Run a task-vector filter on live video: source → graph → window/file.

    Prints which backend it picked and why, and at the end one line with frames, FPS,
    backend and the per-stage p50 latency (ms)."""
    return run_cli(camera=camera, source=source, task=task, engine=engine, onnx=onnx, model=model,
                     taskvec=taskvec, backend=backend, headless=headless, output=output, overlay=overlay,
                     frames=frames, loop=loop, stats_path=stats_path, mask=mask, mask_rect=mask_rect, tiles=tiles,
                     gain_mode=gain_mode, before_after=before_after, cache_dir=cache_dir, reconnect=reconnect,
                     transfer=transfer, noise_k=noise_k, lift=lift, temporal_alpha=temporal_alpha,
                     guide_blur=guide_blur, precision=precision, output_codec=output_codec,
                     input_codec=input_codec, latency=latency)


def run_cli(*, camera=None, source=None, task, engine=None, onnx=None, model=None, taskvec=None, backend="auto",
            headless=False, output=None, overlay=False, frames=None, loop=False, stats_path=None, mask=None,
            mask_rect=None, tiles=None, gain_mode="rgb", before_after=None, cache_dir=None, reconnect=0,
            transfer="denoise", noise_k=None, lift=None, temporal_alpha=None,
            guide_blur=None, precision="fp32", output_codec="auto", input_codec=None, latency=None) -> int:
    """The command as a function: 0 on success, 2 for bad input, 1 when a source fails mid-run."""
    from runtime.sinks import SinkError
    from runtime.sources import SourceError
    from runtime.startup import StartupStatus

    status = StartupStatus()

    def err(msg: str, code: int) -> int:
        status.clear()
        print(f"error: {msg}", file=sys.stderr)
        return code

    identity = None
    try:
        status.phase("checks")
        if task not in PREDICTORS:  # pairs:DIR → its registry name; the folder is read and hashed here
            from taskvec.data.pairs import task_identity
            from taskvec.data.tasks import get_task

            task, identity = get_task(task).name, task_identity(task)
            if not (onnx or engine or taskvec):
                raise UserError(f"a pairs task has no shipped task vector: pass --taskvec FILE (taskvec search "
                                f"--task pairs:DIR) or --onnx FILE (tvexport --task pairs:DIR)")
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
        check_graph_options(task, engine, onnx, backend, model)
        model_spec = model or DEFAULT_MODEL
        from runtime.lowlight import lowlight_params
        from runtime.predictor import make_predictor, parse_rect, parse_tiles, read_mask

        if output is not None:
            from runtime.sinks import check_output_path
            from runtime.stream_sink import parse_output_uri

            check_output_path(output, output_codec)
            if (parse_output_uri(str(output)) or ("",))[0] == "display":  # jetson-inference's name for the window
                if headless:
                    raise UserError(f"--output {output} is the window; it cannot be --headless")
                output = None
        elif output_codec != "auto":
            raise UserError("--output-codec needs --output FILE")
        tile_rc = parse_tiles(tiles)
        lowlight = lowlight_params(transfer, noise_k, lift, temporal_alpha, guide_blur)
        rect = parse_rect(mask_rect) if mask_rect else None
        hole = read_mask(mask) if mask else None
    except (UserError, ValueError, SinkError) as e:
        return err(one_line(e), 2)

    from runtime.backends import BackendRequest, open_backend
    from runtime.pipeline import run
    from runtime.sources import open_source

    uri = str(camera) if camera is not None else source
    status.phase("source", f"opening {uri}")
    try:
        from runtime.sources import parse_source, with_stream_options

        spec = with_stream_options(parse_source(uri), input_codec, latency)
        src = open_source(spec, cache_dir=cache_dir)
    except SourceError as e:
        return err(str(e), 2)
    try:
        try:
            def taskvector_file() -> str:
                return taskvec or str(default_runtime_taskvector(task, model_spec))

            @functools.cache
            def deployed():
                """The command's one ResolvedTask: the model is loaded here, at most once."""
                from taskvec.vectors.resolved import resolve_task

                status.phase("model", f"loading model {model_spec}")
                return resolve_task(task, model_spec, taskvector_file())

            def export_on_first_use() -> Path:
                status.phase("graph", f"the {task} graph of {model_spec} (export cache)")
                path = cached_onnx(task, model_spec, cache_dir, taskvector_file(),
                                   log=lambda s: print(s, file=sys.stderr), deployed=deployed)
                status.phase("backend", "starting the backend")
                return path

            status.phase("backend", "starting the backend")
            be = open_backend(BackendRequest(
                backend, onnx=onnx, engine=engine, export=None if (onnx or engine) else export_on_first_use,
                deployed=deployed, task=task, model=model_spec, graph=graph_request(task, model), cache_dir=cache_dir,
                fp16=precision == "fp16"))
        except (UserError, ValueError, OSError) as e:
            return err(one_line(e), 2)
        with be:
            status.clear_line()
            options = f" [{be.options_line}]" if getattr(be, "options_line", "") else ""
            print(f"backend: {be.name} — {be.reason}{options}", flush=True)  # stdout: stderr is for the error line
            status.phase("first frame", "the first frame")
            predictor = make_predictor(task, be, tiles=tile_rc, mask=hole, rect=rect, gain_mode=gain_mode,
                                       lowlight=lowlight)
            extra: dict = {"provider_options": getattr(be, "options", {}), "precision": precision}
            if identity is not None:
                extra["task_identity"] = identity

            def on_frame(i: int, _inp, _out) -> None:
                if i == 0:
                    status.first_frame()
                    extra["startup_ms"] = status.breakdown_ms()

            stats = run(src, predictor, backend_name=be.name, output=output, headless=headless, overlay=overlay,
                        frames=frames, stats_path=stats_path, before_after=before_after, loop=loop,
                        reconnect=reconnect if src.is_live else 0,
                        paint_masks=(task == "inpainting" and not headless), on_frame=on_frame, extra=extra,
                        progress=headless, output_codec=output_codec)
    except (SourceError, SinkError) as e:
        return err(str(e), 1)
    except (UserError, ValueError) as e:
        return err(one_line(e), 2)
    except KeyboardInterrupt:
        status.clear()
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
