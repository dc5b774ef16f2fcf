"""A training run apart from its loop: the strategy, the model folder (one lock),
`run.json`, and the checkpoint a resumed run restores (docs/method.md §4)."""

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from dped_tf import fileio
from dped_tf import precision
from dped_tf.configs import TrainConfig
from dped_tf.errors import DpedError
from dped_tf.modeling import released


def make_strategy(name):
  """`default` (one device), `mirrored` (the GPUs of this machine) or `multi_worker`
  (machines listed in TF_CONFIG). Create it before TensorFlow runs anything else."""
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    return tf.distribute.MirroredStrategy()
  if name == "multi_worker":
    return tf.distribute.MultiWorkerMirroredStrategy()
  raise DpedError(f"unknown strategy {name!r} (choose from default, mirrored, multi_worker)")


def is_chief(strategy):
  """The worker that writes checkpoints, logs and models: the only one, the `chief`
  task, or worker 0 of a cluster without one."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  if resolver.task_type == "chief":
    return True
  return (resolver.task_type == "worker" and resolver.task_id == 0
          and "chief" not in resolver.cluster_spec().as_dict())


def _missing_folders(path):
  """`path` and those of its parents that do not exist yet, deepest first."""
  missing = []
  path = os.path.abspath(path)
  while not os.path.exists(path):
    missing.append(path)
    path = os.path.dirname(path)
  return missing


def _remove_empty(folder, created):
  """Removes the empty folders under `folder`, then those of `created` (deepest first)
  that are empty."""
  subfolders = [root for root, _, _ in os.walk(folder) if root != folder]
  for path in sorted(subfolders, key=len, reverse=True) + created:
    with contextlib.suppress(OSError):
      os.rmdir(path)


@contextlib.contextmanager
def lock_model_dir(model_dir):
  """Holds `model_dir/train.lock` (fcntl.flock, with this process's PID) while the
  context lasts; DpedError naming the folder and the holder's PID when another process
  holds it. The kernel releases the lock of a process that dies, even by SIGKILL, so a
  stale file never blocks a restart. On leaving, the lock file goes, and so does every
  folder that this call created and that nothing was written to (a start that failed)."""
  if os.path.exists(model_dir) and not os.path.isdir(model_dir):
    raise DpedError(f"{model_dir}: output path exists and is not a folder")
  created = _missing_folders(model_dir)
  os.makedirs(model_dir, exist_ok=True)
  lock_path = os.path.join(model_dir, "train.lock")
  held = False
  try:
    with open(lock_path, "a+") as f:
      try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "unknown"
        raise DpedError(f"{model_dir}: in use by another dped-tf train (PID {holder}); "
                        "one run per model folder") from None
      if not os.path.exists(lock_path) or (os.fstat(f.fileno()).st_ino
                                           != os.stat(lock_path).st_ino):
        raise DpedError(f"{model_dir}: in use by another dped-tf train (its lock was "
                        "renewed as this one started); one run per model folder")
      held = True
      f.seek(0)
      f.truncate()
      f.write(f"{os.getpid()}\n")
      f.flush()
      try:
        yield
      finally:
        with contextlib.suppress(FileNotFoundError):
          os.remove(lock_path)  # while still held: no other run holds a removed file
  finally:
    if held:
      _remove_empty(model_dir, created)


@dataclasses.dataclass(frozen=True)
class Run:
  """Where this worker writes: `model_dir` on the chief, a scratch folder elsewhere."""
  model_dir: str
  strategy: tf.distribute.Strategy
  chief: bool

  def path(self, *parts):
    return os.path.join(self.model_dir, *parts)

  def make_folders(self):
    for sub in ("checkpoints", "images", "logs"):
      os.makedirs(self.path(sub), exist_ok=True)

  @property
  def resuming(self):
    """True when the folder holds a checkpoint to resume from."""
    return tf.train.latest_checkpoint(self.path("checkpoints")) is not None


@contextlib.contextmanager
def open_run(model_dir, strategy=None):
  """The `Run` of `model_dir` under `strategy` (default: one device), locked while the
  context lasts (one run per folder). Only the chief writes `model_dir`; the other
  workers save their checkpoints (a collective operation) to a scratch folder that is
  removed at the end."""
  strategy = strategy or tf.distribute.get_strategy()
  if is_chief(strategy):
    with lock_model_dir(model_dir):
      yield Run(model_dir, strategy, chief=True)
    return
  scratch = tempfile.mkdtemp(prefix="dped-worker-")
  try:
    yield Run(scratch, strategy, chief=False)
  finally:
    shutil.rmtree(scratch, ignore_errors=True)


def make_checkpoint(trainer):
  """Everything a resumed run needs; the input position follows from `step`
  (`tfrecords.make_dataset(start_record=...)`). The object names are those of the
  folders earlier versions wrote (tests/fixtures/run_v0_1)."""
  return tf.train.Checkpoint(generator=trainer.generator, discriminator=trainer.discriminator,
                             g_optimizer=trainer.g_optimizer, d_optimizer=trainer.d_optimizer,
                             step=trainer.step, critic_seed=trainer.seed_generator.state)


def restore(run, trainer):
  """The CheckpointManager of `run` (3 kept), with `trainer` restored from its latest
  checkpoint if there is one ("Resuming from step N" on stdout)."""
  checkpoint = make_checkpoint(trainer)
  manager = tf.train.CheckpointManager(checkpoint, run.path("checkpoints"), max_to_keep=3)
  if manager.latest_checkpoint:
    checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    print(f"Resuming from step {int(trainer.step.numpy())} ({manager.latest_checkpoint})")
  return manager


def generator_source(cfg, resumed):
  """Where the generator's weights came from, for `run.json`: `cfg.init`, and
  `cfg.init_from` (path, digest, whether it was used: not when the run resumed; a
  released model by name: its cached `.keras`, and the name)."""
  source = {"init": cfg.init, "init_from": None}
  if cfg.init_from:
    path = (released.cached_file(cfg.init_from) if released.is_name(cfg.init_from)
            else os.path.abspath(cfg.init_from))
    source["init_from"] = {"path": path,
                           "sha256": fileio.file_digest(path) if os.path.isfile(path) else None,
                           "used": not resumed}
    if released.is_name(cfg.init_from):
      source["init_from"]["released"] = cfg.init_from
  return source


# Options a resumed run may change freely: how long it runs and how often it reports.
FREE_OPTIONS = ("iterations", "eval_every", "checkpoint_every", "log_every", "eval_batches")
# What one invocation records (`run.json` holds the latest at the top, and all of them in
# "segments"; folders of earlier versions have the top-level record only).
SEGMENT_KEYS = ("config", "generator_source", "warnings", "vgg_source", "data",
                "start_step", "changes")


def read_run_json(run):
  """`run.json` of `run` as a dict, None when there is none."""
  path = run.path("run.json")
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    return json.load(f)


RENAMED_SETTINGS = {"model": "architecture"}  # run.json of dped_tf 0.1 -> TrainConfig field


def _settings(config):
  """A config dict with its loss weights at the top level (names of older run.json files
  as `TrainConfig` spells them now)."""
  return {**{RENAMED_SETTINGS.get(k, k): v for k, v in config.items() if k != "loss"},
          **config.get("loss", {})}


def check_settings(run, cfg, new_segment=False):
  """The settings of `cfg` (precision resolved) that differ from those the resumed run
  was last trained with, as "name old -> new" ([] for a new run), `FREE_OPTIONS` aside.
  Changes are refused in one line unless `new_segment` (`--new_segment`)."""
  record = read_run_json(run) if run.resuming else None
  if record is None or "config" not in record:
    return []
  cfg = dataclasses.replace(cfg, precision=precision.resolve(cfg.precision))
  before, now = _settings(record["config"]), _settings(dataclasses.asdict(cfg))
  defaults = _settings(dataclasses.asdict(TrainConfig()))
  changes = [f"{name} {before.get(name, defaults.get(name))!r} -> {value!r}"
             for name, value in now.items()
             if name not in FREE_OPTIONS and before.get(name, defaults.get(name)) != value]
  if changes and not new_segment:
    raise DpedError(f"{run.model_dir}: resuming with other settings than the run's "
                    f"({'; '.join(changes)}); pass --new_segment to go on with them "
                    "(run.json keeps both), or use another --model_dir")
  return changes


def write_run_json(run, cfg, source, warnings, vgg_source, data, start_step, changes=(),
                   resumed=False):
  """`run.json`: this invocation's segment (the resolved configuration, the generator's
  and VGG-19's sources, the warnings, the data folder, the step it started at and the
  settings it changed) at the top, and every segment of the run in "segments" (a resumed
  run appends its own; an invocation that restarts the same segment replaces it)."""
  segment = {"config": dataclasses.asdict(cfg), "generator_source": source,
             "warnings": warnings, "vgg_source": dataclasses.asdict(vgg_source),
             "data": data, "start_step": start_step, "changes": list(changes)}
  record = read_run_json(run) if resumed else None
  segments = []
  if record:
    segments = record.get("segments") or [{k: record[k] for k in SEGMENT_KEYS if k in record}]
  if segments and (segments[-1].get("start_step"), segments[-1].get("config")) == (
      start_step, segment["config"]):
    segment["changes"] = segment["changes"] or segments.pop().get("changes", [])
  fileio.atomic_write_bytes(run.path("run.json"), json.dumps(
      {**segment, "segments": segments + [segment]}, indent=1).encode())


def weights_fingerprint(model):
  """A short digest of a model's weights: equal on workers that are in sync."""
  digest = hashlib.sha256()
  for w in model.weights:
    digest.update(np.asarray(w.numpy(), np.float32).tobytes())
  return digest.hexdigest()[:16]
