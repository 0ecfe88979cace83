r"""The evaluation of ``python -m trainers.evaluate`` as an Apache Beam pipeline (RunInference).

    python -m trainers.beam_evaluate --workdir runs/ucf101 --split test
    python -m trainers.beam_evaluate --workdir runs/ucf101 --split test \
        --build_dir gs://BUCKET/records/ucf101/split1_uniform16_short128_jpeg90 \
        --runner DataflowRunner --project P --region R --temp_location gs://BUCKET/tmp \
        --setup_file ./setup.py

It takes the flags of trainers.evaluate and writes the same report into the same place
(WORKDIR/eval/SPLIT/ unless --out_dir). The graph:

    Shards ─► SpreadShards ─► ReadRecords ─► SpreadRecords ─► Preprocess
           ─► Predict ─► ToRows ─► Write

- ``ReadRecords``: each shard of the split, record by record, keyed by (shard, position),
  so the driver restores the order in which ``tfrecords.reader`` numbers the records.
- ``Preprocess``: the reader's own per-record function (parse ─► sample ─► decode ─►
  augment, evaluation settings) applied to one record: one array per view.
- ``Predict``: ``RunInference`` with Beam's TensorFlow model handler
  (``TFModelHandlerNumpy``, keyed), loading the run's checkpoint once per worker.
- ``Write``: one JSON line per view (video, view, label, model output) to a temporary
  folder; the driver reads them back, averages the views of each video and writes the
  report with ``trainers.report.write_report``, so both evaluations give the same numbers.

Every flag trainers.evaluate does not define is handed to Beam's ``PipelineOptions``, as
``python -m pipeline.build`` does. Without ``--runner`` the pipeline runs locally on all cores
(Beam's FnApiRunner in multi-process mode; ``--direct_num_workers N`` sets the processes).
Remote runners need ``--temp_location``: the checkpoint is copied there for the workers, and
the rows are written there.

The driver checks the split's shards (TFRecord framing and CRCs) before it starts the
pipeline and refuses a damaged one in one line (exit status 2). SIGINT / SIGTERM stop it
with one line (exit status 130 / 143) after removing its temporary folders.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import uuid

from pipeline import cli

cli.quiet_unless_verbose(__name__)    # before TensorFlow and Beam load (unless --verbose)
cli.stop_while_starting(__name__, "beam_evaluate")    # one line, not a traceback

import apache_beam as beam
import numpy as np
from absl import app, flags

from pipeline import runner
from pipeline.media import files
from trainers import data, evaluate, report
from trainers.workdir import RunError

FLAGS = flags.FlagValues()
evaluate.define_flags(FLAGS)
flags.DEFINE_enum("beam_log_level", "error", runner.LOG_LEVELS,
                  "Log level for Beam's own messages.", flag_values=FLAGS)
flags.DEFINE_boolean(
    "fork_workers", True,
    "Start the local worker processes as forks of one process that has imported Beam and "
    "Keras already (milliseconds each), instead of fresh interpreters that import them "
    "again (seconds of CPU each). The command only.", flag_values=FLAGS)
BEAM_EPILOG = ("Any other --flag is passed to Beam's PipelineOptions unchanged (e.g. --runner, "
               "--direct_num_workers, --project, --region, --temp_location, --setup_file).")
ROWS_PREFIX = "views"


# --------------------------------------------------------------------------
# Workers.
# --------------------------------------------------------------------------
def load_checkpoint(uri: str):
    """A .keras file as a Keras model (float32 inference); remote files are copied locally."""
    import keras
    from apache_beam.io.filesystems import FileSystems
    path = uri
    tmp = None
    if "://" in uri:
        tmp = tempfile.mkdtemp(prefix="actionflow-model-")
        path = os.path.join(tmp, os.path.basename(uri))
        with FileSystems.open(uri) as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst)
    from trainers.models import _layers         # noqa: F401  (registers FrameWise)
    try:
        return keras.models.load_model(path, compile=False)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def _predict(model, batch, inference_args, model_id=None):
    """RunInference's inference function: one forward pass over the stacked views."""
    from apache_beam.ml.inference.base import PredictionResult
    outputs = np.asarray(model.predict_on_batch(np.stack(batch)), dtype=np.float32)
    return [PredictionResult(x, y, model_id) for x, y in zip(batch, outputs)]


def model_handler(model_uri: str, max_batch_size: int):
    """Beam's TensorFlow numpy model handler for a .keras checkpoint, keyed by view."""
    from apache_beam.ml.inference.base import KeyedModelHandler
    from apache_beam.ml.inference.tensorflow_inference import TFModelHandlerNumpy

    class KerasCheckpointHandler(TFModelHandlerNumpy):
        """TFModelHandlerNumpy that loads a Keras 3 ``.keras`` file (local or remote)."""

        def load_model(self):
            return load_checkpoint(self._model_uri)

    return KeyedModelHandler(KerasCheckpointHandler(
        model_uri=model_uri, inference_fn=_predict, min_batch_size=1,
        max_batch_size=max_batch_size))


class ReadShard(beam.DoFn):
    """(shard number, path) -> ((shard number, position), serialised record) for each record."""

    def process(self, element):
        import tensorflow as tf
        shard, path = element
        compression = "GZIP" if path.endswith(".gz") else ""
        for position, record in enumerate(tf.data.TFRecordDataset(path, compression)):
            yield (shard, position), record.numpy()


class Preprocess(beam.DoFn):
    """One record -> its evaluation views, by the reader's per-record function."""

    def __init__(self, spec_args: dict, image: bool):
        self.spec_args, self.image = spec_args, image
        self._fn = None

    def setup(self):
        import tensorflow as tf
        from tfrecords import reader
        spec = reader.VideoSpec(training=False, **self.spec_args)
        self._fn = tf.function(reader.clip_fn(spec, with_metadata=True), input_signature=[
            tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.string)])

    def process(self, element):
        import tensorflow as tf
        (shard, position), serialized = element
        video, label, meta = self._fn(tf.constant(0, tf.int64), tf.constant(serialized))
        video = video.numpy()
        if self.image:                   # as reader.make_image_dataset: [views, 1, H, W, 3]
            video = video[:, 0]
        label = int(label.numpy()[0])
        video_id = meta["video_id"].numpy()[0].decode("utf-8", "replace")
        for view in range(video.shape[0]):
            yield (shard, position, view, video_id, label), video[view]


class ToRow(runner.ProgressDoFn):
    """(key, PredictionResult) -> a row (dict); counts views for the local progress line."""

    def process(self, element):
        (shard, position, view, video_id, label), result = element
        self.mark_done()
        yield {"shard": shard, "position": position, "view": view, "video_id": video_id,
               "label": label, "outputs": np.asarray(result.inference, np.float32).tolist()}


def spec_args(plan: evaluate.Plan) -> dict:
    """The reader's VideoSpec fields for this plan, as make_dataset / make_image_dataset set."""
    from tfrecords import reader
    args = data.reader_kwargs(plan.config.data, plan.modality, training=False)
    if plan.modality == "image":
        args.update(num_frames=1, sampling="uniform")
    args["crop_size"] = reader.crop_hw(args["crop_size"])
    args["image_format"] = plan.info.get("image_format") or "jpeg"
    args["num_classes"] = len(plan.classes) or None
    return args


def build_graph(p, plan: evaluate.Plan, model_uri: str, rows_prefix: str,
                progress_dir: str | None = None):
    """The evaluation graph on pipeline ``p``; writes JSON lines to ``rows_prefix``*."""
    from apache_beam.ml.inference.base import RunInference
    build = plan.build_dir.rstrip("/")
    shards = [f"{build}/{name}" for name in plan.info["splits"][plan.split]["shards"]]
    return (p
            | "Shards" >> beam.Create(list(enumerate(shards)))
            | "SpreadShards" >> beam.Reshuffle()
            | "ReadRecords" >> beam.ParDo(ReadShard())
            | "SpreadRecords" >> beam.Reshuffle()
            | "Preprocess" >> beam.ParDo(Preprocess(spec_args(plan), plan.modality == "image"))
            | "Predict" >> RunInference(model_handler(model_uri,
                                                      plan.batch_size * plan.num_views))
            | "ToRows" >> beam.ParDo(ToRow(progress_dir))
            | "Write" >> runner.WriteJsonLines(rows_prefix))


# --------------------------------------------------------------------------
# Driver.
# --------------------------------------------------------------------------
def read_views(rows_prefix: str) -> evaluate.Views:
    """The rows the pipeline wrote, numbered in record order as tfrecords.reader numbers them."""
    from apache_beam.io.filesystems import FileSystems
    rows = []
    for match in FileSystems.match([rows_prefix + "*"])[0].metadata_list:
        with FileSystems.open(match.path) as f:
            rows.extend(json.loads(line) for line in f.read().decode("utf-8").splitlines()
                        if line)
    if not rows:
        raise RunError("the pipeline produced no predictions")
    records = sorted({(r["shard"], r["position"]) for r in rows})
    index = {key: i for i, key in enumerate(records)}
    return evaluate.Views(
        video_index=np.array([index[(r["shard"], r["position"])] for r in rows], np.int64),
        video_id=[r["video_id"] for r in rows],
        label=np.array([r["label"] for r in rows], np.int64),
        view=np.array([r["view"] for r in rows], np.int64),
        outputs=np.array([r["outputs"] for r in rows], np.float32))


def beam_options(beam_args: list[str], log_level: str = "error"):
    """PipelineOptions from the flags we do not own, as pipeline.build makes them (local,
    multi-process, all cores by default); RunError for a flag Beam does not know either."""
    runner.quiet_beam(log_level)
    try:
        return runner.pipeline_options(beam_args, log_level, own_flags="an evaluation flag")
    except runner.OptionsError as e:
        raise RunError(str(e)) from None


def run_pipeline(plan: evaluate.Plan, options, *, progress: bool = True,
                 forks=None) -> evaluate.Views:
    """Runs the graph with the given Beam options; returns the views the workers predicted.
    ``forks``: the fork server that starts the local workers (fresh ones without)."""
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import GoogleCloudOptions
    engine = runner.make_runner(options, forks.command() if forks else None)
    local = runner.is_local(options, engine)
    temp_root = options.view_as(GoogleCloudOptions).temp_location
    if not local and not temp_root:
        raise RunError("a remote runner needs --temp_location (a gs:// or other shared folder "
                       "the workers can read): the checkpoint and the rows go there")
    model_uri = plan.checkpoint
    # the run's temporary folder goes once the finally below has ended the workers; the
    # evaluation's own (progress, local rows) is made inside it, so a run killed outright
    # leaves one folder, which the next run removes (cli.run_temp_folder)
    with cli.run_temp_folder():
        local_tmp = tempfile.mkdtemp(prefix="actionflow-beam-eval-")
        work = (FileSystems.join(temp_root, f"actionflow-eval-{uuid.uuid4().hex[:12]}")
                if not local else local_tmp)
        progress_dir = os.path.join(local_tmp, "progress") if local and progress else None
        if progress_dir:
            os.makedirs(progress_dir)
        try:
            if not local:
                model_uri = FileSystems.join(work, "model.keras")
                with open(plan.checkpoint, "rb") as src, FileSystems.create(model_uri) as dst:
                    shutil.copyfileobj(src, dst)
            rows_prefix = FileSystems.join(work, ROWS_PREFIX)
            p = beam.Pipeline(runner=engine, options=options)
            build_graph(p, plan, model_uri, rows_prefix, progress_dir)
            watch = runner.watch(progress_dir, plan.num_videos, "evaluate", unit="videos",
                                 per_item=plan.num_views) if progress_dir else None
            with cli.StopSignals(on_stop=runner.stop_local_workers if local else None):
                runner.run_and_wait(p, watch)
            return read_views(rows_prefix)
        finally:            # local_tmp goes with the run's folder
            if forks:
                forks.close()
            if not local:
                try:
                    files.remove_tree(work)
                except Exception:  # a leftover temporary folder is not worth failing for
                    pass


def evaluate_with_beam(run, beam_args: list[str], *, split: str | None = None,
                       checkpoint: str = "best", build_dir: str | None = None,
                       num_test_clips: int | None = None, num_test_crops: int | None = None,
                       batch_size: int | None = None, out_dir: str | None = None,
                       progress: bool = True, log_level: str = "error",
                       threshold: float | None = None, forks=None) -> dict:
    """``trainers.evaluate.evaluate`` with the inference in a Beam pipeline; returns metrics.
    ``forks``: see ``run_pipeline``."""
    if threshold is not None:
        raise RunError("--threshold applies to keypoint models, which the Beam evaluation "
                       "does not cover")
    if run.modality == "keypoints":
        raise RunError("the Beam evaluation covers clip and image models; evaluate keypoint "
                       "models with python -m trainers.evaluate")
    options = beam_options(beam_args, log_level)
    plan = evaluate.plan_evaluation(run, split=split, checkpoint=checkpoint,
                                    build_dir=build_dir, num_test_clips=num_test_clips,
                                    num_test_crops=num_test_crops, batch_size=batch_size,
                                    out_dir=out_dir)
    evaluate.check_shards(plan, "beam_evaluate")    # before any worker starts
    evaluate.check_model(run.load_model(plan.checkpoint), plan)
    views = run_pipeline(plan, options, progress=progress, forks=forks)
    videos = evaluate.collect_videos(views, plan.num_views)
    if videos.label.size != plan.num_videos:
        raise RunError(f"the pipeline predicted {videos.label.size} videos but "
                       f"{plan.split} has {plan.num_videos}")
    header = dict(plan.header(), runner="beam")
    return report.write_report(plan.out_dir, videos, plan.classes, header,
                               report.action_groups(plan.info))


def main(argv: list[str]) -> int:
    """Runs the Beam evaluation from parsed flags (argv: program + Beam options)."""
    cli.started()
    from trainers import workdir
    forks = None
    with cli.StopSignals():
        try:
            if _MAY_FORK and FLAGS.fork_workers:    # before TensorFlow runs; each worker
                forks = runner.start_forks(       # loads the model, so Keras is preloaded
                    beam_options(argv[1:], FLAGS.beam_log_level), "evaluate",
                    preload=("keras",))
            kwargs = evaluate.settings(FLAGS)
            run = workdir.open_run(FLAGS.workdir)
            if kwargs["split"] is None:
                kwargs["split"], why = evaluate.choose_split(run, kwargs["build_dir"])
                print(evaluate.split_line(kwargs["split"], why, "beam_evaluate"), flush=True)
            result = evaluate_with_beam(run, argv[1:], progress=FLAGS.progress,
                                        log_level=FLAGS.beam_log_level, forks=forks, **kwargs)
            out = kwargs["out_dir"] or os.path.join(run.workdir, "eval", kwargs["split"])
            print(evaluate.summary(result, out))
        except RunError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except cli.Stopped as stop:
            # run_pipeline's clean-up has removed the local temporary and progress folders
            return evaluate.stopped(stop, "beam_evaluate", "trainers.beam_evaluate")
        finally:
            if forks:               # closed by run_pipeline after a run; else not needed
                forks.close(wait=False)
    return 0


def parse_flags(argv: list[str]) -> list[str]:
    return cli.parse(FLAGS, argv, __name__, known_only=True, epilog=BEAM_EPILOG)


def beam_evaluate_main(argv: list[str]) -> int:
    """Parses ``argv`` (argv[0] is the program name) and evaluates: for scripts and tests."""
    return main(parse_flags(argv))


# Whether this process may fork its local workers (--fork_workers): true for the command,
# which forks before it runs TensorFlow or starts a thread; a program that calls
# beam_evaluate_main() may have done both.
_MAY_FORK = False


def _app():
    global _MAY_FORK
    _MAY_FORK = True
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=parse_flags)


if __name__ == "__main__":
    # Run the importable module, not this __main__ copy: the DoFns the workers unpickle
    # must live in trainers.beam_evaluate.
    from trainers import beam_evaluate
    beam_evaluate._app()
