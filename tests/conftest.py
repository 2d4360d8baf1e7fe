"""Shared fixtures. The "tiny" synthetic data set is generated once per test session."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def synthetic_tiny(tmp_path_factory):
    """The tiny synthetic layout (mocobench.data.synthetic.SyntheticLayout), written once per session."""
    from mocobench.data.synthetic import ensure_synthetic

    return ensure_synthetic(root=tmp_path_factory.mktemp("synthetic"), preset="tiny", seed=0, progress=False)


@pytest.fixture(scope="session")
def synthetic_layout(synthetic_tiny):
    """The tiny synthetic layout with its synth_* detectron2 data sets registered."""
    from mocobench.data.datasets import register_synthetic

    register_synthetic(synthetic_tiny)
    return synthetic_tiny


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    """A user's own tiny COCO and VOC data sets (tests.helpers.user_data.user_layout), once per test module."""
    from tests.helpers.user_data import user_layout

    return user_layout(tmp_path_factory.mktemp("user"))
