"""The Hopper GEMM composed from the blocks, on the GPU against a float32 reference (outputs poisoned)."""
import math

import pytest

import skc

pytestmark = pytest.mark.gpu
torch = pytest.importorskip("torch")


def reference(a, b, bias=None, c=None, alpha=1.0, beta=0.0, activation=None):
    out = alpha * (a.float() @ b.float())
    if c is not None:
        out = out + beta * c.float()
    if bias is not None:
        out = out + bias.float()
    if activation == "relu":
        out = torch.relu(out)
    elif activation == "gelu":
        out = torch.nn.functional.gelu(out, approximate="tanh")
    elif activation == "silu":
        out = torch.nn.functional.silu(out)
    return out


def relative_error(got, expected):
    return ((got.float() - expected).norm() / expected.norm()).item()


def operand(rows, cols, dtype, transposed):
    if transposed:
        return torch.randn(cols, rows, device="cuda", dtype=dtype).t()
    return torch.randn(rows, cols, device="cuda", dtype=dtype)


@pytest.mark.parametrize("M,N,K", [(128, 128, 64), (256, 256, 256), (512, 384, 320), (200, 136, 72), (64, 64, 64),
                                   (1000, 1000, 1000), (8, 8, 8)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_shapes(M, N, K, dtype):
    a, b = operand(M, K, dtype, False), operand(K, N, dtype, False)
    out = torch.full((M, N), float("nan"), device="cuda", dtype=dtype)
    skc.blocks.matmul(a, b, out=out)
    torch.cuda.synchronize()
    assert not out.isnan().any()
    assert relative_error(out, reference(a, b)) <= 1e-2


@pytest.mark.parametrize("ta,tb", [(False, True), (True, False), (True, True)])
def test_transposed_operands(ta, tb):
    M, N, K = 320, 192, 256
    a, b = operand(M, K, torch.bfloat16, ta), operand(K, N, torch.bfloat16, tb)
    out = torch.full((M, N), float("nan"), device="cuda", dtype=torch.bfloat16)
    skc.blocks.matmul(a, b, out=out)
    torch.cuda.synchronize()
    assert relative_error(out, reference(a, b)) <= 1e-2


@pytest.mark.parametrize("activation", [None, "relu", "gelu", "silu"])
def test_fused_epilogue(activation):
    M, N, K = 256, 384, 128
    a, b = operand(M, K, torch.bfloat16, False), operand(K, N, torch.bfloat16, False)
    bias = torch.randn(N, device="cuda", dtype=torch.bfloat16)
    c = torch.randn(M, N, device="cuda", dtype=torch.bfloat16)
    out = torch.full((M, N), float("nan"), device="cuda", dtype=torch.bfloat16)
    skc.blocks.matmul(a, b, out=out, bias=bias, c=c, alpha=0.5, beta=2.0, activation=activation)
    torch.cuda.synchronize()
    expected = reference(a, b, bias, c, 0.5, 2.0, activation)
    assert relative_error(out, expected) <= 1e-2


def assert_calls_with_an_epilogue(a, b, calls: int):
    """`calls` calls of matmul(a, b) with c, bias, alpha, beta and gelu, each into an out poisoned with NaN, against
    the float32 reference."""
    (M, _), N = a.shape, b.shape[1]
    c, bias = torch.randn(M, N, device="cuda", dtype=a.dtype), torch.randn(N, device="cuda", dtype=a.dtype)
    for _ in range(calls):
        out = torch.full((M, N), float("nan"), device="cuda", dtype=a.dtype)
        skc.blocks.matmul(a, b, out=out, c=c, beta=0.5, bias=bias, alpha=2.0, activation="gelu")
        torch.cuda.synchronize()
        assert not out.isnan().any()
        assert relative_error(out, reference(a, b, bias, c, 2.0, 0.5, "gelu")) <= 1e-2


def assert_graph_replays_follow_the_operands(a, b):
    """matmul(a, b) captured in a CUDA graph: each replay computes the operands' new values."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = skc.blocks.matmul(a, b)
    for _ in range(2):
        a.copy_(torch.randn_like(a) / 8)
        b.copy_(torch.randn_like(b) / 8)
        graph.replay()
        torch.cuda.synchronize()
        assert relative_error(out, reference(a, b)) <= 1e-2


@pytest.fixture(params=["direct", "padded"])
def unaligned_path(request, monkeypatch):
    """Rows TMA cannot address, read by the vector loader's narrower loads and stored directly
    (matmul_host._UnalignedRows), or copied into rows 128 bytes apart (_PaddedRows): each path forced by the problem
    size up to which matmul takes the direct one."""
    from skc.blocks import matmul_host

    monkeypatch.setattr(matmul_host, "UNALIGNED_DIRECT_MACS", 2 ** 62 if request.param == "direct" else 0)
    if request.param == "padded":   # (nor few rows by cp.async)
        monkeypatch.setattr(matmul_host, "ASYNC_ROWS", 0)
    matmul_host._PLANS.clear()
    yield request.param
    matmul_host._PLANS.clear()


def _took(path: str) -> bool:
    from skc.blocks import matmul_host

    kind = matmul_host._UnalignedRows if path == "direct" else matmul_host._PaddedRows
    return any(isinstance(plan, kind) for plan in matmul_host._PLANS.values())


@pytest.mark.parametrize("M,N,K", [(333, 777, 999), (64, 70, 70), (2048, 50257, 512), (100, 3000, 5001),
                                   (1000, 1000, 1002)])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, True), (False, True)])
def test_shapes_whose_rows_tma_cannot_address(unaligned_path, M, N, K, ta, tb):
    """K or N (or M for a transposed a) no multiple of 8, as torch.matmul takes them; output poisoned first."""
    a, b = operand(M, K, torch.bfloat16, ta) / 8, operand(K, N, torch.bfloat16, tb) / 8
    out = torch.full((M, N), float("nan"), device="cuda", dtype=torch.bfloat16)
    skc.blocks.matmul(a, b, out=out)
    torch.cuda.synchronize()
    assert _took(unaligned_path)
    assert not out.isnan().any()
    assert relative_error(out, reference(a, b)) <= 1e-2
    assert relative_error(skc.blocks.matmul(a, b), reference(a, b)) <= 1e-2


@pytest.mark.parametrize("offset", [0, 1, 2, 4])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_the_direct_path_at_every_load_width(offset, dtype, monkeypatch):
    """N = 300 allows 4-element loads; operands that start `offset` elements into their buffers take 1- or
    2-element ones (a plan per width), with c, bias, alpha and an activation; output poisoned first."""
    from skc.blocks import matmul_host

    monkeypatch.setattr(matmul_host, "UNALIGNED_DIRECT_MACS", 2 ** 62)
    matmul_host._PLANS.clear()
    M, N, K = 200, 300, 1000
    a = (torch.randn(M * K + 8, device="cuda", dtype=dtype) / 8)[offset:offset + M * K].view(M, K)
    b = (torch.randn(K * N + 8, device="cuda", dtype=dtype) / 8)[offset:offset + K * N].view(K, N)
    c, bias = torch.randn(M, N, device="cuda", dtype=dtype), torch.randn(N, device="cuda", dtype=dtype)
    out = torch.full((M, N), float("nan"), device="cuda", dtype=dtype)
    skc.blocks.matmul(a, b, out=out, c=c, beta=0.5, bias=bias, alpha=2.0, activation="gelu")
    torch.cuda.synchronize()
    assert relative_error(out, reference(a, b, bias, c, 2.0, 0.5, "gelu")) <= 1e-2
    (plan,) = [p for p in matmul_host._PLANS.values() if isinstance(p, matmul_host._UnalignedRows)]
    assert math.gcd(4, offset) in plan.plans


@pytest.mark.parametrize("M,N,K,ta,tb,split", [(4, 7378, 8128, False, False, True), (64, 586, 10048, False, False, True),
                                              (64, 5828, 768, False, False, False), (32, 4096, 4100, False, True, True),
                                              (100, 3000, 5002, False, True, True), (64, 2050, 1100, True, False, True),
                                              (16, 2046, 1030, False, False, True), (128, 3002, 4098, True, True, True),
                                              # only A's rows unaligned (K), B small: ASYNC_A_ONLY_B_ELEMENTS
                                              (64, 1984, 492, False, False, False), (48, 1176, 3898, False, False, True),
                                              (100, 2000, 1030, False, False, True)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_few_rows_over_a_b_tma_cannot_address_read_by_cp_async(M, N, K, ta, tb, split, dtype):
    """The default for few rows (M <= 128) over a large B whose rows TMA cannot address, or a small B beside such
    an A: the vector loader reads the operands in place by cp.async (4- or 8-byte copies, masked ones filling
    zeros), split along K or not, with c, bias, alpha and gelu; two calls a plan (the second bound), output
    poisoned first."""
    from skc.blocks import matmul_host

    matmul_host._PLANS.clear()
    a, b = operand(M, K, dtype, ta) / 8, operand(K, N, dtype, tb) / 8
    assert_calls_with_an_epilogue(a, b, calls=2)
    (plan,) = matmul_host._PLANS.values()
    assert isinstance(plan, matmul_host._UnalignedRows) and plan.cfg.vector_async
    assert (plan.cfg.split_k > 1) == split


@pytest.mark.parametrize("offset", [1, 2, 3])
def test_cp_async_rows_at_odd_addresses_and_in_a_cuda_graph(offset):
    """b starting `offset` elements into its buffer: one-element loads through registers where its address is odd,
    cp.async where it is even; then calls captured in a CUDA graph replay with new operands."""
    from skc.blocks import matmul_host

    matmul_host._PLANS.clear()
    M, N, K = 16, 2050, 2048
    a = operand(M, K, torch.bfloat16, False) / 8
    b = (torch.randn(K * N + 8, device="cuda", dtype=torch.bfloat16) / 8)[offset:offset + K * N].view(K, N)
    assert relative_error(skc.blocks.matmul(a, b), reference(a, b)) <= 1e-2
    (plan,) = matmul_host._PLANS.values()
    width = math.gcd(2, offset)
    assert list(plan.plans) == [width] and plan.plans[width].cfg.vector_async == (width > 1)
    assert_graph_replays_follow_the_operands(a, b)


def test_padded_rows_on_a_side_stream_with_c_and_bias():
    """The copies around the GEMM go to the launch's stream (given, not torch's current one)."""
    a, b = operand(200, 70, torch.bfloat16, False) / 8, operand(70, 90, torch.bfloat16, False) / 8
    c, bias = torch.randn(200, 90, device="cuda", dtype=torch.bfloat16), torch.randn(90, device="cuda",
                                                                                      dtype=torch.bfloat16)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    out = skc.blocks.matmul(a, b, c=c, beta=0.5, bias=bias, activation="relu", stream=side)
    side.synchronize()
    assert relative_error(out, reference(a, b, bias, c, 1.0, 0.5, "relu")) <= 1e-2


@pytest.mark.parametrize("M,N,K,ta,tb", [(333, 777, 999, False, False), (1, 777, 999, False, False),
                                         (200, 90, 70, True, True), (64, 64, 70, False, True)])
def test_kept_padded_buffers_serve_call_after_call(M, N, K, ta, tb):
    """A small padded problem keeps its buffers a launch stream: each call copies new operands into them, and what
    a call returns is its own (a later call leaves it alone). A side stream gets a set of its own."""
    from skc.blocks import matmul_host

    matmul_host._PLANS.clear()
    results = []
    side = torch.cuda.Stream()
    for i in range(3):
        a, b = operand(M, K, torch.bfloat16, ta) / 8, operand(K, N, torch.bfloat16, tb) / 8
        stream = side if i == 2 else None
        if stream is not None:
            stream.wait_stream(torch.cuda.current_stream())
        got = skc.blocks.matmul(a, b, stream=stream)
        (stream or torch.cuda.current_stream()).synchronize()
        results.append((got, reference(a, b)))
    for got, expected in results:
        assert relative_error(got, expected) <= 1e-2
    (plan,) = [p for p in matmul_host._PLANS.values() if isinstance(p, matmul_host._PaddedRows)]
    assert len(plan.kept) == 2   # the current stream's and the side stream's


@pytest.mark.parametrize("M,N,K,linear", [(64, 706, 2534, False), (64, 2422, 376, False), (8, 1616, 315, False),
                                          (152, 1936, 3750, True), (84, 448, 1771, True), (64, 508, 4288, True),
                                          (777, 333, 5000, True), (2500, 2500, 2500, False)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_copied_rows_with_an_epilogue_stored_directly(M, N, K, linear, dtype):
    """Rows TMA cannot address (shapes of a random draw): the operands that need it copied in one launch, the GEMM
    over the copies storing to out directly where out's rows are of N no multiple of 8 (split-K's last share, or
    direct stores; a large out, 2500 x 2500, stored by TMA into rows 128 bytes apart and copied), with c, bias,
    alpha and gelu; three calls a plan (the later ones bound), output poisoned first."""
    from skc.blocks import matmul_host

    matmul_host._PLANS.clear()
    a = torch.randn(M, K, device="cuda", dtype=dtype) / 8
    b = (torch.randn(N, K, device="cuda", dtype=dtype) / 8).t() if linear else torch.randn(K, N, device="cuda",
                                                                                            dtype=dtype) / 8
    assert_calls_with_an_epilogue(a, b, calls=3)
    (plan,) = [p for p in matmul_host._PLANS.values() if isinstance(p, matmul_host._PaddedRows)]
    through_pointer = plan.gemm.cfg.store == "direct" or plan.gemm.cfg.split_k > 1
    assert plan.gemm.gemm == (M, N, K)
    assert through_pointer if N % 8 and M * N <= matmul_host.DIRECT_STORE_ELEMENTS else plan.gemm.cfg.store == "tma"


def test_a_padded_problem_in_a_cuda_graph():
    """Captured calls use memory the graph owns (not the plan's kept buffers): replays compute the operands' new
    values, before and after the plan has kept buffers for the stream."""
    M, N, K = 100, 90, 70
    a, b = operand(M, K, torch.bfloat16, False) / 8, operand(K, N, torch.bfloat16, False) / 8
    skc.blocks.matmul(a, b)   # the plan, its kernels and kept buffers, outside the capture
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        skc.blocks.matmul(a, b)
    torch.cuda.current_stream().wait_stream(side)
    assert_graph_replays_follow_the_operands(a, b)


def test_sass_has_wgmma_and_tma(monkeypatch):
    """The SASS of the kernel this call launches (not the first one the process compiled: under pytest-xdist a
    worker may have compiled another configuration first, a direct-store one)."""
    from skc.blocks import matmul_host, matmul_kernel
    found, compile_ = [], matmul_kernel._compile
    monkeypatch.setattr(matmul_kernel, "_compile", lambda *args, **kwargs: found.append(compile_(*args, **kwargs))
                        or found[-1])
    monkeypatch.setattr(matmul_host, "_PLANS", {})   # (the call's plan made here, its kernel compiled or found)
    monkeypatch.setattr(matmul_kernel, "_launches", {})
    monkeypatch.setattr(matmul_kernel, "_loaded", {})   # (a worker's earlier test may have loaded this one)
    a = torch.randn(256, 256, device="cuda", dtype=torch.bfloat16)
    skc.blocks.matmul(a, a)
    assert found
    sass = found[-1].asm("sass")
    for instruction in ("HGMMA", "UTMALDG", "UTMASTG", "SYNCS"):
        assert instruction in sass
    assert found[-1].resources["spill_stores"] == 0


@pytest.mark.parametrize("M,N,K", [(2048, 2048, 512), (1000, 768, 320), (136, 512, 64)])
@pytest.mark.parametrize("tile_n", [128, 256])
def test_clusters_of_two_with_multicast(M, N, K, tile_n):
    from skc.blocks import MatmulConfig

    a, b = operand(M, K, torch.bfloat16, False), operand(K, N, torch.bfloat16, False)
    out = torch.full((M, N), float("nan"), device="cuda", dtype=torch.bfloat16)
    config = MatmulConfig.for_problem(M, N, K, tile_n=tile_n, cluster_m=2)
    assert config.cluster_m == 2
    skc.blocks.matmul(a, b, out=out, config=config)
    torch.cuda.synchronize()
    assert not out.isnan().any()
    assert relative_error(out, reference(a, b)) <= 1e-2


@pytest.mark.parametrize("M,N,K", [(2048, 2048, 512), (1000, 776, 320), (136, 512, 64)])
@pytest.mark.parametrize("tile_n", [128, 256, 48])
def test_clusters_of_two_share_a_k_major_b_by_rows(M, N, K, tile_n):
    """B stored N x K (K-major): each block of a cluster along M loads half of B's tile's rows for both."""
    from skc.blocks import MatmulConfig

    a, b = operand(M, K, torch.bfloat16, False), operand(K, N, torch.bfloat16, True)
    out = torch.full((M, N), float("nan"), device="cuda", dtype=torch.bfloat16)
    config = MatmulConfig.for_problem(M, N, K, b_k_major=True, tile_n=tile_n, cluster_m=2)
    assert config.cluster_m == 2 and config.b_k_major
    skc.blocks.matmul(a, b, out=out, config=config)
    torch.cuda.synchronize()
    assert not out.isnan().any()
    assert relative_error(out, reference(a, b)) <= 1e-2


@pytest.mark.parametrize("M,N,K", [(16, 8192, 1024), (1000, 768, 320), (136, 520, 200)])
@pytest.mark.parametrize("fields", [{"tile_m": 64, "consumers": 1, "tile_n": 64, "cluster_n": 2},
                                    {"tile_m": 64, "consumers": 1, "tile_n": 128, "cluster_n": 4}],
                         ids=["n2", "n4"])
def test_clusters_along_n_with_a_multicast(M, N, K, fields):
    from skc.blocks import MatmulConfig

    a, b = operand(M, K, torch.bfloat16, False), operand(K, N, torch.bfloat16, False)
    out = torch.full((M, N), float("nan"), device="cuda", dtype=torch.bfloat16)
    # each block of the cluster loads a share of A's rows for all of them
    config = MatmulConfig.for_problem(M, N, K, **fields)
    assert config.cluster == fields["cluster_n"]
    skc.blocks.matmul(a, b, out=out, config=config)
    torch.cuda.synchronize()
    assert not out.isnan().any()
    assert relative_error(out, reference(a, b)) <= 1e-2


@pytest.mark.parametrize("M,N,K", [(1000, 1000, 1000), (3000, 1000, 520), (100, 3000, 5000)])
@pytest.mark.parametrize("fields", [{"tile_m": 192, "tile_n": 192, "cluster_n": 2},
                                    {"tile_m": 192, "tile_n": 192, "cluster_m": 2},
                                    {"tile_m": 64, "tile_n": 64, "cluster_m": 2},
                                    {"tile_m": 64, "tile_n": 128, "cluster_n": 2}],
                         ids=["192-n2", "192-m2", "64-m2", "64x128-n2"])
def test_clusters_sharing_rows_of_a_or_rows_of_k_of_b(M, N, K, fields):
    """Each block of a cluster loads a share of A's rows (along N), or of the rows of K of each of B's 64-column
    chunks (along M, where the chunks do not split evenly), and multicasts it; rows TMA reads at 16-byte but not
    128-byte alignment."""
    from skc.blocks import MatmulConfig

    a, b = operand(M, K, torch.bfloat16, False), operand(K, N, torch.bfloat16, False)
    out = torch.full((M, N), float("nan"), device="cuda", dtype=torch.bfloat16)
    config = MatmulConfig.for_problem(M, N, K, **fields)
    assert config.cluster == 2
    skc.blocks.matmul(a, b, out=out, config=config)
    torch.cuda.synchronize()
    assert not out.isnan().any()
    assert relative_error(out, reference(a, b)) <= 1e-2


def test_the_driver_counts_the_clusters_a_persistent_grid_may_hold():
    from skc.runtime import devices

    device = devices.Device("cuda", 0)
    sms = device.multiprocessors
    assert device.cluster_blocks(1) == sms
    for size in (2, 4, 8):   # whole clusters, at most one block an SM (the H200: 66 of 2, 30 of 4, 15 of 8)
        blocks = device.cluster_blocks(size)
        assert blocks % size == 0 and 0 < blocks <= sms, (size, blocks)


@pytest.mark.parametrize("ta,tb", [(False, False), (True, True)])
def test_vector_loader_without_tma(ta, tb):
    from skc.blocks import MatmulConfig

    M, N, K = 200, 136, 72
    a, b = operand(M, K, torch.bfloat16, ta), operand(K, N, torch.bfloat16, tb)
    out = torch.full((M, N), float("nan"), device="cuda", dtype=torch.bfloat16)
    config = MatmulConfig(loader="vector", a_k_major=not ta, b_k_major=tb)
    skc.blocks.matmul(a, b, out=out, config=config)
    torch.cuda.synchronize()
    assert relative_error(out, reference(a, b)) <= 1e-2


@pytest.mark.parametrize("store", ["tma", "direct"])
def test_a_vector_loader_config_on_padded_rows(store):
    """A given vector-loader config where N is no multiple of 8 (store="tma") or a is a view of longer rows: the
    padded path's copies are dense for it (the vector loader reads rows through pointers)."""
    from skc.blocks import MatmulConfig

    config = MatmulConfig(loader="vector", store=store)
    b = operand(520, 300, torch.bfloat16, False)
    for a in (operand(200, 520, torch.bfloat16, False), operand(200, 530, torch.bfloat16, False)[:, :520]):
        out = skc.blocks.matmul(a, b, config=config)
        torch.cuda.synchronize()
        assert out.shape == (200, 300) and relative_error(out, reference(a, b)) <= 1e-2


@pytest.mark.parametrize("M,N,K", [(200, 136, 72), (1000, 768, 320), (2048, 2048, 512), (4096, 4096, 1024)])
@pytest.mark.parametrize("tile_m,tile_n", [(64, 128), (64, 256), (128, 128)])
def test_consumers_taking_tiles_in_turn(M, N, K, tile_m, tile_n):
    from skc.blocks import MatmulConfig

    a, b = operand(M, K, torch.bfloat16, False), operand(K, N, torch.bfloat16, False)
    config = MatmulConfig(tile_m=tile_m, tile_n=tile_n, stages=4, pingpong=True)
    for _ in range(2):   # twice: nothing left behind (a barrier arrival, a stage) breaks the next launch
        out = torch.full((M, N), float("nan"), device="cuda", dtype=torch.bfloat16)
        skc.blocks.matmul(a, b, out=out, config=config)
        torch.cuda.synchronize()
        assert relative_error(out, reference(a, b)) <= 1e-2


# -- the configurations matmul() picks (tuning table and tile-shape rule), split-K --------------------------------
def _tuned_cases():
    from skc.blocks.matmul_host import TUNED

    return sorted({(key[1:4], key[4]) for key in TUNED})


@pytest.mark.parametrize("shape,dtype", _tuned_cases(), ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple)
                         else v)
def test_every_tuned_configuration_on_its_shape(shape, dtype):
    """Each TUNED entry through matmul() on its shape, output poisoned first."""
    M, N, K = shape
    torch_dtype = torch.bfloat16 if dtype == "bf16" else torch.float16
    a, b = operand(M, K, torch_dtype, False) / 8, operand(K, N, torch_dtype, False) / 8
    out = torch.full((M, N), float("nan"), device="cuda", dtype=torch_dtype)
    skc.blocks.matmul(a, b, out=out)
    torch.cuda.synchronize()
    assert not out.isnan().any()
    assert relative_error(out, reference(a, b)) <= 1e-2


@pytest.mark.parametrize("M,N,K,width", [(1800, 5000, 4096, 144), (440, 9848, 1984, 160), (7900, 672, 1984, 176),
                                         (990, 3104, 3584, 208), (978, 10672, 4032, 224), (1000, 11000, 4096, 240),
                                         # 80-112 wide, one wave (tile_rules.NARROW_FILL_SPEEDS)
                                         (890, 1400, 11200, 80), (1790, 760, 12288, 96), (630, 2552, 8192, 112)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_tiles_of_other_widths_with_an_epilogue(M, N, K, width, dtype):
    """x @ w.t() on the 128-row tiles 80-112 and 144-240 wide that the rule takes for a K-major B (FILL_WIDTH_SPEEDS
    and NARROW_FILL_SPEEDS of tile_rules), tails in M and N, with c, bias, alpha and gelu, two calls a plan (the
    second bound), outputs poisoned first."""
    from skc.blocks import matmul_host

    matmul_host._PLANS.clear()
    a, b = operand(M, K, dtype, False) / 8, operand(K, N, dtype, True) / 8
    assert_calls_with_an_epilogue(a, b, calls=2)
    (plan,) = matmul_host._PLANS.values()
    assert (plan.cfg.tile_m, plan.cfg.tile_n) == (128, width)


@pytest.mark.parametrize("M,N,K,tile,cluster", [(1157, 3488, 1240, (128, 144), (2, 1)),
                                                (1859, 2544, 1080, (128, 160), (2, 1)),
                                                (1659, 1552, 2552, (128, 176), (2, 1)),
                                                (2508, 3904, 2200, (128, 208), (2, 1)),
                                                # rows a multiple of 32 bytes past 128-byte alignment: no
                                                # cluster along M (tile_rules.shares_b)
                                                (1157, 3488, 1232, (128, 144), (1, 1)),
                                                (2508, 3904, 2192, (128, 208), (1, 1)),
                                                (953, 3440, 2440, (128, 224), (2, 1)),
                                                (2970, 2488, 872, (128, 240), (2, 1)),
                                                (1044, 3144, 1256, (192, 144), (1, 2)),
                                                (2402, 1544, 2552, (192, 160), (1, 2)),
                                                # the second cluster, where the first adds a wave
                                                (371, 5936, 3128, (128, 144), (1, 2)),
                                                (588, 5696, 6088, (128, 224), (1, 2)),
                                                (9210, 792, 6760, (192, 160), (2, 1))])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_unaligned_rows_on_tiles_of_other_widths(M, N, K, tile, cluster, dtype):
    """x @ w.t() whose rows are not 128-byte aligned (K no multiple of 64) on the tiles tile_rules.UNALIGNED_FILL_WIDTHS
    adds, in the clusters the rule gives them (128 rows along M, sharing B, where the rows cross 32-byte sectors;
    192 rows along N, sharing A), tails in M, N and K, with c, bias, alpha and gelu, two calls a plan (the second
    bound), outputs poisoned first."""
    from skc.blocks import matmul_host

    matmul_host._PLANS.clear()
    a, b = operand(M, K, dtype, False) / 8, operand(K, N, dtype, True) / 8
    assert_calls_with_an_epilogue(a, b, calls=2)
    (plan,) = matmul_host._PLANS.values()
    assert (plan.cfg.tile_m, plan.cfg.tile_n, plan.cfg.cluster_m, plan.cfg.cluster_n) == (*tile, *cluster)


@pytest.mark.parametrize("M,N,K,tile", [(3072, 3072, 3072, (192, 192)), (3000, 2960, 1000, (192, 192)),
                                        (1536, 1536, 1536, {False: (192, 96), True: (128, 144)}),
                                        (1530, 1536, 1472, {False: (192, 96), True: (128, 144)}),
                                        (768, 3072, 768, {False: (192, 96), True: (128, 144)}),
                                        (760, 3008, 704, (192, 96)),
                                        (512, 12288, 4096, (128, 192)),
                                        (1920, 1664, 1024, (192, 128)),
                                        (1900, 1640, 1000, {False: (192, 128), True: (128, 208)}),
                                        (1024, 4096, 4096, (128, 256)), (64, 5120, 5120, (64, 64)),
                                        (100, 3000, 5000, (64, 64)), (20, 1000, 1032, (64, 64)),
                                        (6144, 6144, 1024, (192, 192)), (192, 7168, 1024, (192, 64)),
                                        (150, 6016, 1024, (192, 64)),
                                        (129, 5000, 1024, {False: (192, 64), True: (64, 128)}),
                                        # 144-240 wide for a K-major B (tile_rules.FILL_WIDTH_SPEEDS), tails in M, N
                                        (1800, 5000, 4096, {False: (128, 256), True: (128, 144)}),
                                        (440, 9848, 1984, {False: (128, 192), True: (128, 160)}),
                                        (7900, 672, 1984, {False: (128, 192), True: (128, 176)}),
                                        (990, 3104, 3584, {False: (128, 256), True: (128, 208)}),
                                        (978, 10672, 4032, {False: (128, 256), True: (128, 224)}),
                                        (1000, 11000, 4096, {False: (128, 256), True: (128, 240)})])
@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_the_tiles_the_wave_rule_picks(M, N, K, tile, tb, dtype):
    """The tile shapes MatmulConfig.for_problem weighs by their waves (192 x 192 and 192 x 128: three consumer
    warpgroups; 64 x 64 for few rows; 192 x 96, whose row-major B is read in 32-column chunks; one row of 192 x 64
    for 128 < M <= 192, A's box holding M's rows, one epilogue buffer; likewise where only B's rows are not 128-byte
    aligned, 129 x 5000 with B row-major; 128-row tiles 144-240 wide for a K-major B), with tails in M, N and K, B
    row-major and K-major (x @ w.t()), bf16 and fp16, output poisoned first."""
    from skc.blocks import matmul_host

    a, b = operand(M, K, dtype, False) / 8, operand(K, N, dtype, tb) / 8
    out = torch.full((M, N), float("nan"), device="cuda", dtype=dtype)
    skc.blocks.matmul(a, b, out=out)
    torch.cuda.synchronize()
    plans = [plan for plan in matmul_host._PLANS.values() if getattr(plan, "sizes", None) == (M, N, K)]
    plan = plans[-1]
    assert (plan.cfg.tile_m, plan.cfg.tile_n) == (tile[tb] if isinstance(tile, dict) else tile)
    assert not out.isnan().any()
    assert relative_error(out, reference(a, b)) <= 1e-2


@pytest.mark.parametrize("M,N,K,tb", [(160, 7168, 4096, False), (160, 7168, 4096, True), (136, 7168, 8192, False),
                                      (136, 7168, 8192, True), (150, 6016, 4096, False), (150, 6016, 4096, True),
                                      (192, 8192, 4096, False), (129, 5056, 4096, False), (129, 5000, 4096, True)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_few_rows_and_deep_k_swap_a_and_b(M, N, K, tb, dtype):
    """128 < M <= 192 with K >= 4096 (rows 128-byte aligned: a row-major B's N a multiple of 64): matmul runs
    out^T = b^T a^T on 64-row tiles of N, M wide (rounded up to 8), each tile stored transposed into the row-major out
    (poisoned first), with tails in M and in N (a K-major B), B row-major and K-major; then with C, bias, alpha and
    gelu, and in place (c is out)."""
    from skc.blocks import matmul_host

    a, b = operand(M, K, dtype, False) / 8, operand(K, N, dtype, tb) / 8
    out = torch.full((M, N), float("nan"), device="cuda", dtype=dtype)
    skc.blocks.matmul(a, b, out=out)
    torch.cuda.synchronize()
    swapped = [plan for plan in matmul_host._PLANS.values() if getattr(getattr(plan, "inner", None), "sizes", None)
               == (N, M, K)]
    assert swapped and swapped[-1].inner.cfg.swap_ab and swapped[-1].inner.cfg.tile_n == -(-M // 8) * 8
    assert not out.isnan().any()
    assert relative_error(out, reference(a, b)) <= 1e-2
    c, bias = torch.randn(M, N, device="cuda", dtype=dtype), torch.randn(N, device="cuda", dtype=dtype)
    out.fill_(float("nan"))
    skc.blocks.matmul(a, b, out=out, c=c, bias=bias, alpha=0.5, beta=2.0, activation="gelu")
    expected = reference(a, b, bias, c, 0.5, 2.0, "gelu")
    assert relative_error(out, expected) <= 1e-2
    in_place = c.clone()
    skc.blocks.matmul(a, b, out=in_place, c=in_place)
    assert relative_error(in_place, reference(a, b, c=c, beta=1.0)) <= 1e-2


@pytest.mark.parametrize("M,N,K,split", [(16, 8192, 8192, 2), (16, 1024, 8192, 8), (20, 1000, 4104, 3),
                                         (130, 520, 2048, 4), (64, 128, 192, 4)])
def test_split_k(M, N, K, split):
    from skc.blocks import MatmulConfig

    a, b = operand(M, K, torch.bfloat16, False), operand(K, N, torch.bfloat16, False)
    config = MatmulConfig.for_problem(M, N, K, multiprocessors=132, split_k=split)
    assert config.split_k == split
    for _ in range(3):  # the workspace and counters the kernel leaves zero serve the next launch
        out = torch.full((M, N), float("nan"), device="cuda", dtype=torch.bfloat16)
        skc.blocks.matmul(a, b, out=out, config=config)
        torch.cuda.synchronize()
        assert not out.isnan().any()
        assert relative_error(out, reference(a, b)) <= 1e-2


# -- stream-K (the last waves' k-steps shared between the blocks; split tiles completed by their second part) ------
@pytest.mark.parametrize("M,N,K,fields", [
    (4096, 4096, 4096, {}), (2048, 2048, 2048, {"tile_m": 64, "tile_n": 256}), (4096, 14336, 1024, {}),
    (1000, 3000, 2056, {"tile_n": 128}), (2176, 2304, 8192, {"tile_m": 256, "tile_n": 128}),
    (384, 512, 64, {"tile_m": 64, "tile_n": 128}), (4096, 4096, 128, {}),
])
def test_stream_k_is_exact(M, N, K, fields):
    """Small integers in fp16: every sum is exact, so a split tile's two parts must add to the very product (a part
    missing, added twice or read before it was written shows); the buffers serve launch after launch."""
    from skc.blocks import MatmulConfig

    a = torch.randint(-1, 2, (M, K), device="cuda").half()
    b = torch.randint(-1, 2, (K, N), device="cuda").half()
    expected = (a.float() @ b.float()).half()
    config = MatmulConfig.for_problem(M, N, K, "f16", multiprocessors=132, stream_k=True, **fields)
    for _ in range(3):
        out = torch.full((M, N), float("nan"), device="cuda", dtype=torch.float16)
        skc.blocks.matmul(a, b, out=out, config=config)
        torch.cuda.synchronize()
        assert torch.equal(out, expected)


@pytest.mark.parametrize("M,N,K,fields", [(16, 4096, 8192, {"split_k": 4}), (4096, 4096, 2048, {"stream_k": True})],
                         ids=["split-k", "stream-k"])
def test_split_and_stream_k_fuse_their_epilogue(M, N, K, fields):
    """alpha, beta · C, bias and gelu applied once, to the whole sum of a tile's parts."""
    from skc.blocks import EpilogueSpec, MatmulConfig

    a, b = operand(M, K, torch.bfloat16, False), operand(K, N, torch.bfloat16, False)
    bias = torch.randn(N, device="cuda", dtype=torch.bfloat16)
    c = torch.randn(M, N, device="cuda", dtype=torch.bfloat16)
    out = torch.full((M, N), float("nan"), device="cuda", dtype=torch.bfloat16)
    spec = EpilogueSpec(alpha=True, beta=True, bias=True, activation="gelu")
    config = MatmulConfig.for_problem(M, N, K, multiprocessors=132, epilogue=spec, **fields)
    skc.blocks.matmul(a, b, out=out, bias=bias, c=c, alpha=0.5, beta=2.0, activation="gelu", config=config)
    torch.cuda.synchronize()
    assert relative_error(out, reference(a, b, bias, c, 0.5, 2.0, "gelu")) <= 1e-2


# -- a batch in one launch (3-D tensor maps, a batch coordinate in the scheduler) -----------------------------------
@pytest.mark.parametrize("shape", [(8, 2048, 2048, 2048), (3, 200, 136, 72), (5, 1000, 264, 512)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_batch_times_batch_in_one_launch(shape, dtype):
    batch, M, N, K = shape
    a = torch.randn(batch, M, K, device="cuda", dtype=dtype)
    b = torch.randn(batch, K, N, device="cuda", dtype=dtype)
    out = torch.full((batch, M, N), float("nan"), device="cuda", dtype=dtype)
    skc.blocks.matmul(a, b, out=out)
    torch.cuda.synchronize()
    plan = [p for p in skc.blocks.matmul_host._PLANS.values() if getattr(p, "batches", None) == batch]
    assert plan and plan[-1].cfg.batched == "ab"
    assert not out.isnan().any()
    assert relative_error(out, torch.bmm(a.float(), b.float())) <= 1e-2


def test_strided_batch_of_a_in_one_launch_with_bias():
    a = torch.randn(256, 4, 320, device="cuda", dtype=torch.bfloat16).transpose(0, 1)  # cannot fold
    b = torch.randn(320, 192, device="cuda", dtype=torch.bfloat16)
    bias = torch.randn(192, device="cuda", dtype=torch.bfloat16)
    out = skc.blocks.matmul(a, b, bias=bias, activation="relu")
    torch.cuda.synchronize()
    expected = torch.relu(a.float() @ b.float() + bias.float())
    assert relative_error(out, expected) <= 1e-2


@pytest.mark.parametrize("M,N,K,fields", [
    (1536, 1536, 1536, {"tile_m": 192, "tile_n": 96, "cluster_m": 1}),   # 128 tiles, cuBLAS's tile at 1536³
    (1000, 1000, 1024, {"tile_m": 192, "tile_n": 96, "cluster_m": 1}),   # tails in M and N
    (2048, 1600, 512, {"tile_n": 160, "cluster_m": 2}),                   # five chunks, shared by rows of K
    (520, 2000, 776, {"tile_n": 96, "cluster_m": 2})])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_row_major_b_in_32_column_chunks(M, N, K, fields, dtype):
    """Tiles of a row-major B an odd multiple of 32 columns wide: 32-column chunks under the 64-byte swizzle (TMA
    boxes and wgmma descriptors alike), alone and in clusters along M; output poisoned first."""
    from skc.blocks import MatmulConfig

    a, b = operand(M, K, dtype, False) / 8, operand(K, N, dtype, False) / 8
    config = MatmulConfig.for_problem(M, N, K, "bf16" if dtype == torch.bfloat16 else "f16", multiprocessors=132,
                                      **fields)
    assert config.swizzle("b") == 64
    out = torch.full((M, N), float("nan"), device="cuda", dtype=dtype)
    skc.blocks.matmul(a, b, out=out, config=config)
    torch.cuda.synchronize()
    assert not out.isnan().any()
    assert relative_error(out, reference(a, b)) <= 1e-2


@pytest.mark.parametrize("M,N,K,b_k_major,split", [(4, 1152, 4800, False, 4), (32, 1472, 4416, False, 3),
                                                    (7, 280, 2816, False, 3), (8, 320, 3280, True, 4),
                                                    (427, 384, 8192, True, 3), (256, 576, 4608, False, 2),
                                                    # the deep-K rule's tiles and shares (tile_rules.deep_k_tiles):
                                                    # 64 x 64, 64 x 128 and 128 x 128 tiles; 5 shares of 384
                                                    # k-steps (uneven); a K-major B
                                                    (192, 640, 14208, False, 4), (384, 768, 8192, False, 3),
                                                    (576, 576, 24576, False, 5), (817, 768, 16832, True, 3),
                                                    (867, 576, 15488, False, 3),
                                                    # from 64 k-steps; 64-row tiles' columns past N; rows not
                                                    # 128-byte aligned (A's, A's and B's, a K-major B's), unclustered
                                                    (300, 896, 7040, False, 3), (200, 1216, 6656, True, 3),
                                                    (808, 320, 14528, False, 2), (338, 768, 6112, False, 2),
                                                    (368, 344, 7392, False, 3), (424, 224, 12648, True, 4),
                                                    # one row of 64 x 64 tiles filling a quarter to half of the
                                                    # SMs (tile_rules.one_row_split): 1-57 rows, a K-major B
                                                    (4, 2304, 9152, False, 2), (1, 2560, 3520, True, 2),
                                                    (16, 4096, 14336, True, 2), (57, 3648, 8064, False, 2),
                                                    # and over a shallow K, unsplit from 32 rows
                                                    # (tile_rules.SHALLOW_ROW_STEPS), in 2 shares under them
                                                    (52, 2112, 2112, False, 1), (58, 1472, 1920, True, 1),
                                                    (10, 1472, 1920, False, 2)])
@pytest.mark.parametrize("epilogue", [False, True])
def test_few_tiles_over_a_deep_k_split_by_the_rule(M, N, K, b_k_major, split, epilogue):
    """The rule's split-K for few tiles over a deep K (tile_rules.few_tiles_split; several rows of tiles filling at
    most half the SMs: tile_rules.half_wave_split; one wave of them over at least 64 k-steps: tile_rules.deep_k_tiles;
    rows not 128-byte aligned: the same, tile_rules.UNALIGNED_SPLITS),
    twice on one plan (its workspace and counters reused), with and without C, bias, alpha and an activation;
    outputs poisoned."""
    from skc.blocks import matmul_host

    a, b = operand(M, K, torch.bfloat16, False), operand(K, N, torch.bfloat16, b_k_major)
    extras = {}
    if epilogue:
        extras = {"c": torch.randn(M, N, device="cuda", dtype=torch.bfloat16), "beta": 0.5, "alpha": 2.0,
                  "bias": torch.randn(N, device="cuda", dtype=torch.bfloat16), "activation": "gelu"}
    matmul_host._PLANS.clear()
    for _ in range(2):
        out = torch.full((M, N), float("nan"), device="cuda", dtype=torch.bfloat16)
        skc.blocks.matmul(a, b, out=out, **extras)
        torch.cuda.synchronize()
        assert not out.isnan().any()
        assert relative_error(out, reference(a, b, **extras)) <= 1e-2
    (plan,) = matmul_host._PLANS.values()
    assert plan.cfg.split_k == split and plan.cfg.cluster == 1


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_one_row_split_over_a_transposed_a(dtype):
    """tile_rules.one_row_split's 2 shares where A is MN-major (a transposed view, its rows 128 bytes apart: 64 of them)
    and in fp16: 64 x 2944 x 6016, output poisoned, twice on one plan."""
    from skc.blocks import matmul_host

    M, N, K = 64, 2944, 6016
    a, b = operand(M, K, dtype, True), operand(K, N, dtype, False)
    matmul_host._PLANS.clear()
    for _ in range(2):
        out = torch.full((M, N), float("nan"), device="cuda", dtype=dtype)
        skc.blocks.matmul(a, b, out=out)
        torch.cuda.synchronize()
        assert not out.isnan().any()
        assert relative_error(out, reference(a, b)) <= 1e-2
    (plan,) = matmul_host._PLANS.values()
    assert (plan.cfg.tile_m, plan.cfg.tile_n, plan.cfg.split_k, plan.cfg.a_k_major) == (64, 64, 2, False)


@pytest.mark.parametrize("M,N,K,b_k_major,split", [(87, 7168, 10176, False, 1), (67, 6272, 11776, True, 1),
                                                    (80, 3008, 8192, True, 2), (65, 4096, 4160, False, 1)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_second_row_mostly_past_m_takes_one_row_of_128_x_64_tiles(M, N, K, b_k_major, split, dtype):
    """65-88 rows over a deep K (tile_rules.TALL_ROW_ROWS): one row of 128 x 64 tiles, A's boxes holding only M's rows
    (rounded up to 8), unsplit or in one_row_split's 2 shares; with C, bias, alpha and gelu, twice on one plan,
    outputs poisoned."""
    from skc.blocks import matmul_host

    a, b = operand(M, K, dtype, False), operand(K, N, dtype, b_k_major)
    extras = {"c": torch.randn(M, N, device="cuda", dtype=dtype), "beta": 0.5, "alpha": 2.0,
              "bias": torch.randn(N, device="cuda", dtype=dtype), "activation": "gelu"}
    matmul_host._PLANS.clear()
    for fields in ({}, extras, extras):
        out = torch.full((M, N), float("nan"), device="cuda", dtype=dtype)
        skc.blocks.matmul(a, b, out=out, **fields)
        torch.cuda.synchronize()
        assert not out.isnan().any()
        assert relative_error(out, reference(a, b, **fields)) <= 1e-2
    for plan in matmul_host._PLANS.values():
        assert (plan.cfg.tile_m, plan.cfg.tile_n, plan.cfg.split_k, plan.cfg.a_rows) == (128, 64, split,
                                                                                          -(-M // 8) * 8)


def test_unaligned_rows_cluster_along_n_where_along_m_adds_a_wave():
    """639 x 6432 x 7424 (B's rows 12864 bytes apart): 128 x 256 tiles in clusters along N
    (tile_rules.unaligned_cluster: 5 rows of 26 tiles fill one wave, 3 rows of clusters along M would take two).
    (787 x 4504 x 9216, the shape this was measured at, takes 192 x 192 tiles since the tiles' speeds follow their
    clusters: unaligned_tile_speeds.)"""
    from skc.blocks import matmul_host

    M, N, K = 639, 6432, 7424
    a, b = operand(M, K, torch.bfloat16, False), operand(K, N, torch.bfloat16, False)
    matmul_host._PLANS.clear()
    out = torch.full((M, N), float("nan"), device="cuda", dtype=torch.bfloat16)
    skc.blocks.matmul(a, b, out=out)
    torch.cuda.synchronize()
    assert relative_error(out, reference(a, b)) <= 1e-2
    (plan,) = matmul_host._PLANS.values()
    assert (plan.cfg.tile_m, plan.cfg.tile_n, plan.cfg.cluster_m, plan.cfg.cluster_n) == (128, 256, 1, 2)


def _shifted(shape, dtype, elements, fill=None):
    """A view of `shape` starting `elements` into a buffer of its own (rows dense: only the start is off 16 bytes)."""
    n = math.prod(shape)
    buffer = torch.empty(n + 64, device="cuda", dtype=dtype)
    view = buffer[elements:elements + n].view(*shape)
    if fill is None:
        view.copy_(torch.randn(*shape, device="cuda").to(dtype))
    else:
        view.view(torch.int16 if dtype.itemsize == 2 else dtype).fill_(fill)
    return view


@pytest.mark.parametrize("shifted", ["a", "b", "out", "a,b", "a,out", "b,out", "a,b,out"])
@pytest.mark.parametrize("M,N,K", [(300, 264, 1000), (16, 4096, 4096)])
@pytest.mark.parametrize("on_side_stream", [False, True])
def test_operands_off_16_bytes_are_copied_alone_and_right_on_any_stream(shifted, M, N, K, on_side_stream):
    """Each subset of a, b and out starting off a 16-byte boundary (their rows aligned): only those are copied
    (GemmPlan._through_aligned_copies), around a direct or split-K launch, on the current or a side stream."""
    names = shifted.split(",")
    a = _shifted((M, K), torch.bfloat16, 3 if "a" in names else 0)
    b = _shifted((K, N), torch.bfloat16, 5 if "b" in names else 0)
    c = torch.randn(M, N, device="cuda", dtype=torch.bfloat16)
    out = _shifted((M, N), torch.bfloat16, 1 if "out" in names else 0, fill=0x7FA1)   # (a NaN no kernel makes)
    expected = reference(a, b, c=c, alpha=1.5, beta=0.5)
    if on_side_stream:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        skc.blocks.matmul(a, b, out, c=c, alpha=1.5, beta=0.5, stream=side.cuda_stream)
        torch.cuda.current_stream().wait_stream(side)
    else:
        skc.blocks.matmul(a, b, out, c=c, alpha=1.5, beta=0.5)
    assert relative_error(out, expected) < 1e-2


@pytest.mark.parametrize("shifted", ["a", "b", "out", "a,b,out"])
@pytest.mark.parametrize("block_scaled", [False, True])
def test_fp8_operands_off_16_bytes_are_copied_alone_and_right(shifted, block_scaled):
    """The fp8 GEMM with a, b (K-major) or out starting off 16 bytes, per-tensor and block-scaled."""
    names, (M, N, K) = shifted.split(","), (300, 384, 512)
    f8 = torch.float8_e4m3fn
    a = _shifted((M, K), f8, 7 if "a" in names else 0)
    b = _shifted((N, K), f8, 9 if "b" in names else 0).t()
    out = _shifted((M, N), torch.bfloat16, 1 if "out" in names else 0, fill=0x7FA1)
    if block_scaled:
        scale_a = torch.rand(M, K // 128, device="cuda") + 0.5
        scale_b = torch.rand(K // 128, N // 128, device="cuda") + 0.5
        expected = (a.float() * scale_a.repeat_interleave(128, 1)) @ \
            (b.float() * scale_b.repeat_interleave(128, 0).repeat_interleave(128, 1))
    else:
        scale_a, scale_b = torch.tensor(0.7, device="cuda"), torch.tensor(1.3, device="cuda")
        expected = (a.float() @ b.float()) * (0.7 * 1.3)
    assert skc.blocks.matmul(a, b, out, scale_a=scale_a, scale_b=scale_b, out_dtype=torch.bfloat16) is out
    assert relative_error(out, expected) < 1e-2
