"""Built-in synthetic data: seeded scenes written once in ImageFolder, VOC, COCO and Cityscapes layouts.

    from mocobench.data.synthetic import ensure_synthetic, PRESETS
    layout = ensure_synthetic(root="output/synthetic", preset="demo", seed=0)
"""
from .layout import SyntheticLayout, cache_key, ensure_synthetic
from .presets import GENERATOR_VERSION, PRESETS, resolve_params
from .shapes import CATEGORIES, CITYSCAPES_THING_CLASSES

__all__ = ["CATEGORIES", "CITYSCAPES_THING_CLASSES", "GENERATOR_VERSION", "PRESETS", "SyntheticLayout",
           "cache_key", "ensure_synthetic", "resolve_params"]
