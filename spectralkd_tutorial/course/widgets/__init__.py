"""ipywidgets explorers; each widget's update function is a plain method, tested headlessly.

One import line per widget module (add yours below).
"""

from .phasor import PhasorExplorer  # noqa: F401
from .text_explorer import TextSpectrumExplorer  # noqa: F401
from .vit_explorer import ViTSpectrumExplorer  # noqa: F401
