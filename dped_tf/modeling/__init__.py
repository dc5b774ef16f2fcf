"""The networks (docs/method.md §1-§3).

Importing this package, which importing any of its modules does first, runs every module
whose classes Keras saves, so that each `.keras` file the project writes loads. A class of
each is imported, not the module, so that one held by `dped_tf.lazy` runs too.
"""

from dped_tf.modeling.layers import InstanceNorm
from dped_tf.modeling.generator import Generator
from dped_tf.modeling.baselines import SRCNN
from dped_tf.modeling.discriminator import Discriminator
from dped_tf.modeling.vgg import ContentNetwork
