"""Apache Beam on a Dask cluster: ``--runner DaskRunner`` for the build and the Beam evaluation.

    python -m pipeline.build ... --runner DaskRunner                   # a local Dask cluster
    python -m pipeline.build ... --runner DaskRunner --dask_client_address HOST:8786

Beam's own DaskRunner (``apache_beam.runners.dask``, Beam 2.77) runs a graph by turning
each transform into a Dask bag. It has four gaps that our graphs fall into; this
subclass closes them and changes nothing else:

1. A ParDo with tagged outputs became one bag holding every output, handed whole to
   each consumer: the build's error sink received the records themselves and failed in
   ``json.dumps`` on their bytes (``Object of type bytes is not JSON serializable``).
   Here every output of a ParDo is a bag of its own, filtered by tag.
2. What a DoFn emitted in ``finish_bundle`` was dropped (the outputs were collected
   before it ran): the build's part rows, Beam's batching for RunInference. Kept here.
3. Only the bag of the last transform was computed, so of a graph with several sinks
   (shards, counts, errors) one ran. Here every leaf is computed.
4. ``Reshuffle`` did nothing and ``Create`` made one partition per 128 elements, so a
   few hundred items ran on one worker. Here ``Create`` makes one partition per element
   (up to ``--dask_npartitions``, default 4 per worker thread) and ``Reshuffle`` splits
   its input into that many partitions.

A DoFn runs in a copy of its own per partition (a partition is a bundle), so workers
with several threads never share one. When no ``--dask_client_address`` is given a
local cluster is started for the run and closed after it.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import os
import typing as t

import apache_beam as beam
from apache_beam import DoFn, TaggedOutput, pvalue
from apache_beam.internal import pickler
from apache_beam.pipeline import PipelineVisitor
from apache_beam.runners.common import DoFnContext, DoFnInvoker, DoFnSignature, _OutputHandler
from apache_beam.runners.dask import dask_runner as beam_dask
from apache_beam.runners.dask import transform_evaluator as te
from apache_beam.runners.dask.overrides import (_Create, _Flatten, _GroupByKeyOnly, _Reshuffle,
                                                dask_overrides)
from apache_beam.runners.runner import PipelineResult, PipelineState

DaskOptions = beam_dask.DaskOptions      # registers --dask_client_address and friends


def starts_own_cluster(options) -> bool:
    """Whether the options name no cluster, so the runner starts a local one (a
    single-threaded worker process per core) for the run."""
    given = options.view_as(DaskOptions).get_all_options(drop_default=True, current_only=True)
    return not {"address", "scheduler_file"} & set(given)


PARTITIONS_PER_THREAD = 4


def _run_bundle(items, fn_bytes: bytes, window_fn, label: str, side_inputs, args, kwargs):
    """One partition through a fresh copy of the DoFn; every output, finish_bundle's too,
    as raw elements (main output) or ``TaggedOutput(tag, element)``."""
    receivers = te.OneReceiver()
    handler = _OutputHandler(window_fn=window_fn, main_receivers=receivers[None],
                             tagged_receivers=receivers, per_element_output_counter=None,
                             output_batch_converter=None, process_yields_batches=False,
                             process_batch_yields_elements=False)
    invoker = DoFnInvoker.create_invoker(
        DoFnSignature(pickler.loads(fn_bytes)), handler,
        context=DoFnContext(label, state=None), side_inputs=side_inputs, input_args=args,
        input_kwargs=kwargs, user_state_context=None,
        bundle_finalizer_param=DoFn.BundleFinalizerParam())
    invoker.invoke_setup()
    invoker.invoke_start_bundle()
    for item in items:
        invoker.invoke_process(item)
    invoker.invoke_finish_bundle()
    invoker.invoke_teardown()
    return [TaggedOutput(v.tag, v.value.value) if isinstance(v, TaggedOutput) else v.value
            for v in receivers.values]


def _untagged(x) -> bool:
    return not isinstance(x, TaggedOutput)


def _has_tag(tag: str):
    return lambda x: isinstance(x, TaggedOutput) and x.tag == tag


def _value(x):
    return x.value


class DaskRunner(beam_dask.DaskRunner):
    """Beam's DaskRunner with tagged outputs, finish_bundle outputs, every sink and real
    partitioning (see the module docstring)."""

    @staticmethod
    def to_bags(npartitions: int):
        """A pipeline visitor that makes one Dask bag per PCollection (``.bags``) and knows
        which PCollections no transform reads (``.leaves``)."""
        from dask import bag as db

        @dataclasses.dataclass
        class Visitor(PipelineVisitor):
            bags: dict = dataclasses.field(default_factory=collections.OrderedDict)
            consumed: set = dataclasses.field(default_factory=set)

            def visit_transform(self, node) -> None:
                transform = node.transform
                inputs = [self.bags[p] for p in node.inputs
                          if not isinstance(p, pvalue.PBegin) and p in self.bags]
                self.consumed.update(id(p) for p in node.inputs)
                self.consumed.update(id(si.pvalue) for si in node.side_inputs)
                if isinstance(transform, _Create):
                    values = list(transform.values)
                    result = db.from_sequence(values, npartitions=max(1, min(len(values),
                                                                             npartitions)))
                elif isinstance(transform, _Reshuffle):
                    result = inputs[0].repartition(npartitions=npartitions)
                elif isinstance(transform, _Flatten):
                    result = db.concat(inputs)
                elif isinstance(transform, _GroupByKeyOnly):
                    result = te.GroupByKey(node).apply(inputs[0])
                elif type(transform) is beam.ParDo:      # (not _GroupAlsoByWindow: a no-op
                    result = self._pardo(node, inputs[0])  # after GroupByKeyOnly here)
                else:                   # transforms with nothing to compute pass through
                    result = inputs[0] if inputs else None
                outputs = dict(node.outputs)
                for tag, pcoll in outputs.items():
                    if type(transform) is beam.ParDo and len(outputs) > 1:
                        self.bags[pcoll] = (result.filter(_untagged) if tag is None else
                                            result.filter(_has_tag(tag)).map(_value))
                    else:
                        self.bags[pcoll] = result

            def _pardo(self, node, bag):
                transform = node.transform
                args, kwargs = transform.raw_side_inputs
                main = next(iter(node.main_inputs.values()))
                window_fn = main.windowing.windowfn if hasattr(main, "windowing") else None
                side_inputs = None
                if node.side_inputs:
                    side_inputs = [te.SideInputMap(type(si), si._view_options(),
                                                   te.DaskBagWindowedIterator(
                                                       self.bags[si.pvalue],
                                                       si._window_mapping_fn))
                                   for si in node.side_inputs]
                return bag.map(te.get_windowed_value, window_fn).map_partitions(
                    _run_bundle, pickler.dumps(transform.fn), window_fn, node.full_label,
                    side_inputs, list(args), kwargs)

            @property
            def leaves(self) -> list:
                return [bag for pcoll, bag in self.bags.items()
                        if id(pcoll) not in self.consumed and bag is not None]

        return Visitor()

    def run_pipeline(self, pipeline, options):
        import dask
        import dask.distributed as ddist
        dask_options = options.view_as(DaskOptions).get_all_options(
            drop_default=True, current_only=True)
        bag_kwargs = DaskOptions._extract_bag_kwargs(dask_options)
        level = logging.getLogger("apache_beam").getEffectiveLevel()
        for name in ("distributed", "dask"):      # Dask sets its own levels on import
            logging.getLogger(name).setLevel(level)
        # and the worker processes of a local cluster read theirs from the environment
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", logging.getLevelName(level).lower())
        os.environ.setdefault("DASK_DISTRIBUTED__WORKER__DASHBOARD", "False")
        own_cluster = starts_own_cluster(options)
        if own_cluster:   # one single-threaded worker process per core, no dashboard
            cluster = ddist.LocalCluster(n_workers=os.cpu_count() or 1, threads_per_worker=1,
                                         dashboard_address=None,
                                         scheduler_kwargs={"dashboard": False},
                                         silence_logs=level)
            client = ddist.Client(cluster, **dask_options)
        else:
            client = ddist.Client(**dask_options)
        threads = sum(client.nthreads().values()) or 1
        pipeline.replace_all(dask_overrides())
        visitor = self.to_bags(bag_kwargs.get("npartitions")
                               or PARTITIONS_PER_THREAD * threads)
        pipeline.visit(visitor)
        futures = client.compute(dask.optimize(*visitor.leaves))
        return DaskResult(client, futures, own_cluster=own_cluster)


@dataclasses.dataclass
class DaskResult(PipelineResult):
    """The run on the cluster; waiting for it raises the first worker error, and closes
    the client (and the local cluster it started)."""

    client: t.Any
    futures: t.Sequence
    own_cluster: bool

    def __post_init__(self):
        super().__init__(PipelineState.RUNNING)

    def wait_until_finish(self, duration=None) -> str:
        import dask.distributed as ddist
        try:
            for _ in ddist.as_completed(self.futures, with_results=True):
                pass
            self._state = PipelineState.DONE
        except Exception:
            self._state = PipelineState.FAILED
            raise
        except BaseException:       # stopped (a signal): no task of the run starts again
            self.client.cancel(self.futures)
            self._state = PipelineState.CANCELLED
            raise
        finally:
            cluster = self.client.cluster if self.own_cluster else None
            self.client.close()
            if cluster is not None:
                cluster.close()
        return self._state

    def cancel(self) -> str:
        self.client.cancel(self.futures)
        self._state = PipelineState.CANCELLED
        return self._state

    def metrics(self):
        raise NotImplementedError("the Dask runner reports no Beam metrics")
