"""Vector add: out = x + y, with 16-byte loads and a masked tail.

Each thread adds VEC consecutive floats with one vector load per input; the last block's
threads past the end take the scalar path with a mask. Run it: `skc run examples/vector_add.py`.
"""
import numpy as np

import skc

VEC = 4          # floats per 16-byte access
BLOCK = 256      # threads per block


@skc.kernel(block=BLOCK)
def vector_add(x: skc.Ptr[skc.f32], y: skc.Ptr[skc.f32], out: skc.Ptr[skc.f32], n: skc.i32):
    start = (skc.block_id(0) * BLOCK + skc.thread_id(0)) * VEC
    if start + VEC <= n:
        a = skc.load(x + start, width=VEC)
        b = skc.load(y + start, width=VEC)
        skc.store(out + start, a + b)
    else:
        for i in skc.static_range(VEC):
            index = start + i
            inside = index < n
            a = skc.load(x + index, mask=inside)
            b = skc.load(y + index, mask=inside)
            skc.store(out + index, a + b, mask=inside)


def launch(x, y, out, n: int):
    vector_add[skc.cdiv(n, BLOCK * VEC), BLOCK](x, y, out, n)


def main(n=None) -> str:
    device = skc.current_device()
    n = n or (1 << 20 if not device.is_interpreter else 10_007)
    rng = np.random.default_rng(0)
    x_host = rng.standard_normal(n, dtype=np.float32)
    y_host = rng.standard_normal(n, dtype=np.float32)
    x, y = skc.to_device(x_host), skc.to_device(y_host)
    out = skc.empty(n, skc.f32).fill_bytes(0xFF)  # poisoned: NaN where nothing is written
    launch(x, y, out, n)
    return skc.testing.assert_close(out.numpy(), x_host + y_host, rtol=0, atol=0, what="vector_add")


if __name__ == "__main__":
    print(main())
