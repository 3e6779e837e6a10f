"""Test set-up: the tests' helpers on sys.path, a private compile cache, GPU tests skipped without a GPU."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Tests never read or write the user's compile cache."""
    import skc

    skc.set_cache_dir(tmp_path_factory.mktemp("skc-cache"))
    yield
    skc.set_cache_dir(None)


def pytest_collection_modifyitems(config, items):
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    import skc

    if skc.gpu_available():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU (none found)")
    for item in gpu_items:
        item.add_marker(skip)
