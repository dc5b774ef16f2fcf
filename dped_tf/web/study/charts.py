"""The study's chart: Figure-10-style bars (docs/method.md §8) drawn with matplotlib's
object API (no pyplot, so no global backend is chosen for the process)."""

import io
import math

import matplotlib
from matplotlib import figure
from matplotlib import patches

from dped_tf import fileio


def plot_figure10(path, pairs, classes):
  """`figure10_png` into `path`, atomically."""
  fileio.atomic_write_bytes(path, figure10_png(pairs, classes))


def figure10_png(pairs, classes):
  """PNG bytes of the Figure-10-style bars: per experiment, one stacked bar per pair (the two classes'
  fractions of wins, with the 95% interval) and one for the shares of all choices."""
  experiments = sorted({r.experiment for r in classes})
  names = list(dict.fromkeys(r.name for r in classes))
  colors = dict(zip(names, matplotlib.colormaps["tab10"].colors))
  fig = figure.Figure(figsize=(4.2 * len(experiments), 3.6))
  axes = fig.subplots(1, len(experiments), squeeze=False)
  for ax, e in zip(axes[0], experiments):
    bars = [r for r in pairs if r.experiment == e]
    def segment(x, bottom, height, name):
      ax.bar(x, height, bottom=bottom, color=colors[name], edgecolor="white")
      if height >= 0.08:
        ax.text(x, bottom + height / 2, f"{height:.0%}", ha="center", va="center",
                fontsize=8, color="white")

    for x, r in enumerate(bars):
      segment(x, 0.0, r.fraction, r.first)
      segment(x, r.fraction, 1 - r.fraction, r.second)
      if not math.isnan(r.ci_low):
        ax.errorbar(x, r.fraction, yerr=[[r.fraction - r.ci_low], [r.ci_high - r.fraction]],
                    color="black", capsize=4)
    bottom = 0.0
    for r in (r for r in classes if r.experiment == e):
      segment(len(bars), bottom, r.share, r.name)
      bottom += r.share
    ax.set_xticks(range(len(bars) + 1),
                  [f"{r.first}\nvs\n{r.second}" for r in bars] + ["all\nchoices"], fontsize=8)
    ax.axhline(0.5, color="gray", lw=0.8, ls="--")
    ax.set_ylim(0, 1)
    ax.set_title(f"{e} ({bars[0].votes if bars else 0} votes per pair)", fontsize=9)
  axes[0][0].set_ylabel("fraction of choices")
  fig.legend([patches.Rectangle((0, 0), 1, 1, color=colors[n]) for n in names], names,
             loc="upper center", ncol=len(names), fontsize=8, frameon=False)
  fig.tight_layout(rect=(0, 0, 1, 0.92))
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=120)
  return buf.getvalue()
