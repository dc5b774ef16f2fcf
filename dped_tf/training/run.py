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


@contextlib.contextmanager
def lock_model_dir(model_dir):
  """Holds `model_dir/train.lock` (fcntl.flock, with this process's PID) while the
  context lasts; DpedError naming the folder and the holder's PID when another process
  holds it. The kernel releases the lock of a process that dies, even by SIGKILL, so a
  stale file never blocks a restart."""
  if os.path.exists(model_dir) and not os.path.isdir(model_dir):
    raise DpedError(f"{model_dir}: output path exists and is not a folder")
  os.makedirs(model_dir, exist_ok=True)
  with open(os.path.join(model_dir, "train.lock"), "a+") as f:
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      f.seek(0)
      holder = f.read().strip() or "unknown"
      raise DpedError(f"{model_dir}: in use by another dped-tf train (PID {holder}); "
                      "one run per model folder") from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    yield


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


def file_digest(path):
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def generator_source(cfg, resumed):
  """Where the generator's weights came from, for `run.json`: `cfg.init`, and
  `cfg.init_from` (path, digest, whether it was used: not when the run resumed; a
  released model by name: its cached `.keras`, and the name)."""
  source = {"init": cfg.init, "init_from": None}
  if cfg.init_from:
    path = (released.cached_file(cfg.init_from) if released.is_name(cfg.init_from)
            else os.path.abspath(cfg.init_from))
    source["init_from"] = {"path": path,
                           "sha256": file_digest(path) if os.path.isfile(path) else None,
                           "used": not resumed}
    if released.is_name(cfg.init_from):
      source["init_from"]["released"] = cfg.init_from
  return source


def write_run_json(run, cfg, source, warnings, vgg_source, data, start_step):
  """`run.json`: the resolved configuration, the generator's and VGG-19's sources, the
  warnings, the data folder and the step this invocation started at."""
  fileio.atomic_write_bytes(run.path("run.json"), json.dumps(
      {"config": dataclasses.asdict(cfg), "generator_source": source, "warnings": warnings,
       "vgg_source": dataclasses.asdict(vgg_source), "data": data,
       "start_step": start_step}, indent=1).encode())


def weights_fingerprint(model):
  """A short digest of a model's weights: equal on workers that are in sync."""
  digest = hashlib.sha256()
  for w in model.weights:
    digest.update(np.asarray(w.numpy(), np.float32).tobytes())
  return digest.hexdigest()[:16]
