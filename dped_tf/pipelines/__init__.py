"""The data jobs of `dped-tf` as Apache Beam pipelines, for archives and datasets that
outgrow one machine (the `beam` extra; README "At scale").

- `enhance_archive`: every photo of a file pattern through `enhancement.photo.enhance_file`,
  the per-photo function of `dped-tf enhance` (`dped-tf enhance ... --beam`).
- `build_dataset`: phone/DSLR photo pairs through `dataloaders.align.align_one`, the
  per-pair step of `dped-tf align`, into the TFRecords of `dped-tf prepare`
  (`dped-tf align ... --beam`).
- `running`: the pipeline options (DirectRunner, one worker per core, unless Beam's own
  options say otherwise) and the counters of a finished run.

Only these modules import Apache Beam; the commands name them with `lazy_import`, and
this file imports none of them, so that the rest of the library runs without Beam.
"""

from dped_tf.errors import DpedError
from dped_tf.lazy import import_now


def require_beam():
  """Imports Apache Beam, or raises a DpedError saying how to install it."""
  try:
    import_now("apache_beam")
  except ModuleNotFoundError:
    raise DpedError("Apache Beam is not installed (pip install -e '.[beam]')") from None
