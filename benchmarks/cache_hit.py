"""Compile time of the vector-add example in a new process, after `import skc` and numpy (the interpreter's and the
arrays' dependency, imported lazily by skc): cold (empty cache) and from the disk cache (the key includes the digest of skc's own source). No GPU needed: it compiles to PTX.

    SKC_CACHE_DIR=/tmp/skc-hit python benchmarks/cache_hit.py   # run twice: the first is cold, then hits
"""
import os
import sys
import time

import numpy  # noqa: F401  (imports are not what is timed)

import skc  # noqa: F401

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
start = time.perf_counter()
from vector_add import vector_add  # noqa: E402

kernel = vector_add.compile(target="sm_90a")
kernel.asm("ptx")
print(f"{(time.perf_counter() - start) * 1e3:.1f} ms, from_cache={kernel.from_cache}")
