"""Pipeline options and counters shared by the Beam pipelines of `dped_tf.pipelines`."""

import logging
import os

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from dped_tf.errors import DpedError

NAMESPACE = "dped_tf"


def default_args(workers=None):
  """Beam's options for a run on this machine: the DirectRunner in multi-processing mode
  with `workers` processes (default: one per CPU core), its workers logging warnings
  only."""
  return ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
          f"--direct_num_workers={workers or os.cpu_count()}",
          "--default_sdk_harness_log_level=WARNING"]


def pipeline_options(beam_args):
  """`PipelineOptions` from `default_args()` overridden by `beam_args` (Beam's own
  command-line options: `--runner`, `--direct_num_workers`, a cloud runner's). An
  option Beam does not know is refused rather than dropped."""
  options = PipelineOptions(default_args() + list(beam_args))
  known = options.get_all_options(retain_unknown_options=False)
  given = {a[2:].split("=", 1)[0].replace("-", "_") for a in beam_args if a.startswith("--")}
  unknown = sorted(g for g in given if g not in known)
  if unknown:
    raise DpedError(f"unknown Apache Beam option(s): {', '.join('--' + u for u in unknown)}")
  return options


def run(pipeline):
  """Runs `pipeline` to the end; returns its result, or raises a DpedError when the
  runner does not report it done."""
  logging.getLogger("apache_beam").setLevel(logging.WARNING)  # the runner's start-up lines
  result = pipeline.run()
  state = result.wait_until_finish()
  if state not in (None, beam.runners.runner.PipelineState.DONE):
    raise DpedError(f"the Beam pipeline ended {state}")
  return result


def counter(name):
  """The Beam counter `name` of the project's namespace."""
  return beam.metrics.Metrics.counter(NAMESPACE, name)


def counters(result):
  """{name: value} of the project's counters in a finished run (committed values where
  the runner has them, else attempted ones), summed over steps."""
  found = {}
  query = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
  for metric in query["counters"]:
    value = metric.committed if metric.committed is not None else metric.attempted
    found[metric.key.metric.name] = found.get(metric.key.metric.name, 0) + value
  return found
