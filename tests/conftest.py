"""Test set-up: the tests' helpers on sys.path, a private compile cache, GPU tests skipped without a GPU."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Tests never read or write the user's compile cache: the private folder is SKC_CACHE_DIR as well, where a
    test's `set_cache_dir(None)` goes back to (it went back to ~/.cache/skc, and every later test read and wrote the
    user's cache: a kernel another run had put there was a disk hit, whose metadata a test read as a fresh
    compile's)."""
    import skc

    private = str(tmp_path_factory.mktemp("skc-cache"))
    before = os.environ.get("SKC_CACHE_DIR")
    os.environ["SKC_CACHE_DIR"] = private
    skc.set_cache_dir(private)
    yield
    skc.set_cache_dir(None)
    if before is None:
        os.environ.pop("SKC_CACHE_DIR", None)
    else:
        os.environ["SKC_CACHE_DIR"] = before


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
