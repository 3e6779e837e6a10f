"""matmul of shapes whose rows TMA cannot address (a row stride of no whole number of 16-byte units: K or N, or M
for a transposed a, no multiple of 8), as torch.matmul takes any shape. The operands that need it are copied, in one
launch, into buffers whose rows start 128 bytes apart, and the GEMM over them stores to out directly where out's
rows are of N no multiple of 8 (matmul_host._PaddedRows); or,
up to matmul_host.UNALIGNED_DIRECT_MACS and for arrays that cannot be copied (skc's own), the vector loader reads
such rows with narrower loads and the consumers store to out directly (_UnalignedRows). Exact against numpy in the
interpreter on both paths, with every layout, c, bias and an activation, out given or not."""
from dataclasses import replace

import numpy as np
import pytest

import skc
from skc.blocks import MatmulConfig, matmul, matmul_host

RNG = np.random.default_rng(70)


def ints(*shape):
    return RNG.integers(-2, 3, shape).astype(np.float16)


def exact(a, b):
    return a.astype(np.float32) @ b.astype(np.float32)


@pytest.fixture(params=["direct", "padded"])
def path(request, monkeypatch):
    """Each path forced by the problem size up to which matmul takes the direct one (and, padded, by no rows for
    the cp.async rule)."""
    monkeypatch.setattr(matmul_host, "UNALIGNED_DIRECT_MACS", 2 ** 62 if request.param == "direct" else 0)
    if request.param == "padded":
        monkeypatch.setattr(matmul_host, "ASYNC_ROWS", 0)
    return matmul_host._UnalignedRows if request.param == "direct" else matmul_host._PaddedRows


@pytest.mark.parametrize("M, N, K", [(40, 48, 70), (40, 70, 64), (37, 70, 70), (1, 9, 3)])
@pytest.mark.parametrize("ta, tb", [(False, False), (True, False), (False, True), (True, True)],
                         ids=["nn", "tn", "nt", "tt"])
def test_any_shape_in_every_layout(hopper_interpreter, path, M, N, K, ta, tb):
    a = np.ascontiguousarray(ints(K, M)).T if ta else ints(M, K)
    b = np.ascontiguousarray(ints(N, K)).T if tb else ints(K, N)
    out = matmul(a, b)
    assert out.shape == (M, N)
    np.testing.assert_array_equal(out.astype(np.float32), exact(a, b))
    # another path only where some row holds a K, N or M that is no multiple of 8 (a transposed a's rows are of M,
    # a K-major b's of K; out's of N)
    unaligned = bool(K % 8 and (not ta or tb)) or bool(N % 8) or bool(M % 8 and ta)
    assert any(isinstance(plan, path) for plan in matmul_host._PLANS.values()) == unaligned


def test_the_padded_path_is_the_default_and_skc_arrays_take_the_direct_one(hopper_interpreter):
    a, b = ints(24, 21), ints(21, 30)
    np.testing.assert_array_equal(matmul(a, b).astype(np.float32), exact(a, b))
    assert [type(plan) for plan in matmul_host._PLANS.values()][0] is matmul_host._PaddedRows
    matmul_host._PLANS.clear()
    out = matmul(skc.to_device(a), skc.to_device(b))   # (no copy of skc's arrays: they were refused by TMA's check)
    np.testing.assert_array_equal(out.numpy().astype(np.float32), exact(a, b))
    assert [type(plan) for plan in matmul_host._PLANS.values()] == [matmul_host._UnalignedRows]


def test_the_direct_path_keeps_whole_64_column_chunks_of_a_row_major_b(hopper_interpreter):
    """The rule may pick 192 x 96 tiles (a row-major B in 32-column chunks, under the 64-byte swizzle only TMA
    writes); the vector loader writes 128-byte chunks, so the direct path widens such tiles to 128 (found in review:
    a ValueError at the first call of skc arrays that fit 192 x 96 tiles in one wave of the interpreter's 4 SMs)."""
    a, b = ints(136, 64), ints(64, 258)
    assert MatmulConfig.for_problem(136, 258, 64, multiprocessors=4).tile_n == 96
    out = matmul(skc.to_device(a), skc.to_device(b))
    np.testing.assert_array_equal(out.numpy().astype(np.float32), exact(a, b))
    (plan,) = matmul_host._PLANS.values()
    assert isinstance(plan, matmul_host._UnalignedRows) and plan.cfg.tile_n == 128


def test_a_config_with_the_vector_loader_and_direct_stores_takes_the_direct_path(hopper_interpreter):
    from skc.blocks import MatmulConfig

    a, b = ints(24, 21), ints(21, 30)
    config = MatmulConfig(tile_m=64, consumers=1, tile_n=64, loader="vector", store="direct", dtype="f16")
    np.testing.assert_array_equal(matmul(a, b, config=config).astype(np.float32), exact(a, b))
    (plan,) = matmul_host._PLANS.values()
    assert isinstance(plan, matmul_host._UnalignedRows) and plan.plans[1].cfg.tile_n == 64


@pytest.mark.parametrize("offset, width", [(0, 2), (1, 1), (2, 2), (4, 2)])
def test_the_direct_path_loads_as_wide_as_rows_and_addresses_allow(hopper_interpreter, path, offset, width):
    """Rows of 70 take 2-element loads; operands `offset` elements into their buffers at most gcd(offset, 8)."""
    M, N, K = 24, 70, 40
    a = ints(M * K + 8)[offset:offset + M * K].reshape(M, K)
    b = ints(K * N + 8)[offset:offset + K * N].reshape(K, N)
    np.testing.assert_array_equal(matmul(a, b).astype(np.float32), exact(a, b))
    if path is matmul_host._PaddedRows:
        return
    (plan,) = matmul_host._PLANS.values()
    assert isinstance(plan, matmul_host._UnalignedRows) and list(plan.plans) == [width]
    assert plan.plans[width].cfg.vector_width == width and plan.plans[width].cfg.store == "direct"


@pytest.mark.parametrize("M, N, K, ta, tb", [(4, 130, 256, False, False), (20, 136, 130, False, True),
                                             (64, 70, 200, True, False), (100, 66, 136, False, False)])
@pytest.mark.parametrize("share_steps", [8, 1])
def test_few_rows_over_a_b_it_would_copy_are_read_by_cp_async(hopper_interpreter, monkeypatch, M, N, K, ta, tb,
                                                              share_steps):
    """Few rows of A (M <= ASYNC_ROWS) over a B whose rows TMA cannot address: the vector loader reads B (and A) in
    place by cp.async, unsplit or (k-steps enough for ASYNC_SHARE_STEPS) split along K, with c, bias, alpha and an
    activation, into a poisoned out. The limit on B's size is lifted to run small shapes."""
    monkeypatch.setattr(matmul_host, "ASYNC_B_ELEMENTS", 1)
    monkeypatch.setattr(matmul_host, "ASYNC_SHARE_STEPS", share_steps)
    a = np.ascontiguousarray(ints(K, M)).T if ta else ints(M, K)
    b = np.ascontiguousarray(ints(N, K)).T if tb else ints(K, N)
    c, bias = ints(M, N), ints(N)
    out = np.full((M, N), np.nan, np.float16)
    matmul(a, b, out=out, c=c, beta=2.0, alpha=0.5, bias=bias, activation="relu")
    expected = np.maximum(0.5 * exact(a, b) + 2 * c.astype(np.float32) + bias, 0.0)
    np.testing.assert_array_equal(out.astype(np.float32), expected)
    (plan,) = matmul_host._PLANS.values()
    assert isinstance(plan, matmul_host._UnalignedRows) and plan.cfg.vector_async and plan.cfg.tile_m == 64
    assert (plan.cfg.split_k > 1) == (share_steps == 1)
    assert (plan.cfg.store == "direct") == (plan.cfg.split_k == 1)


def test_a_call_at_an_odd_address_copies_through_registers(hopper_interpreter, monkeypatch):
    """cp.async copies 4 bytes at least: a call whose b starts an odd number of elements into its buffer takes the
    vector loader's one-element loads through registers (a plan of its own), and the next aligned call cp.async."""
    monkeypatch.setattr(matmul_host, "ASYNC_B_ELEMENTS", 1)
    M, N, K = 4, 130, 72
    a = ints(M, K)
    for offset in (1, 0):
        b = ints(K * N + 1)[offset:offset + K * N].reshape(K, N)
        np.testing.assert_array_equal(matmul(a, b).astype(np.float32), exact(a, b))
    (plan,) = matmul_host._PLANS.values()
    assert sorted(plan.plans) == [1, 2]
    assert not plan.plans[1].cfg.vector_async and plan.plans[2].cfg.vector_async


@pytest.mark.parametrize("M, N, K, b_k_major, tile, shares", [
    (4, 7378, 8128, False, (64, 256), 4), (64, 586, 10048, False, (64, 64), 13), (64, 5828, 768, False, (64, 64), 1),
    (32, 4096, 4100, True, (64, 128), 4), (128, 3002, 4096, False, (64, 256), 5),
    (112, 8386, 15492, False, (128, 256), 4), (96, 4731, 1466, True, (128, 128), 2),
    (16, 15690, 3666, False, (64, 256), 2), (100, 30000, 4096, False, (128, 256), 1)])
def test_the_cp_async_rule_fills_the_sms(M, N, K, b_k_major, tile, shares):
    """few_rows_async on 132 SMs: of the tiles that make one wave, the widest (then the tallest) that fills the SMs
    best split along K (at most 16 shares of 8 k-steps or more); no 256-wide tiles of a K-major B, no 128-row ones for
    64 rows or fewer; the widest unsplit where every tile makes more than a wave (the measured best or near it on the
    H200, thirty-first session)."""
    from skc.blocks.epilogue import EpilogueSpec

    cfg = matmul_host.few_rows_async((M, N, K, "bf16", True, b_k_major), EpilogueSpec(), 132)
    assert (cfg.tile_m, cfg.tile_n, cfg.split_k) == (*tile, shares)
    assert cfg.loader == "vector" and cfg.vector_async and cfg.consumers == cfg.tile_m // 64
    assert cfg.store == ("direct" if shares == 1 else "tma")


@pytest.mark.parametrize("M, N, K, copied, taken", [
    (64, 1030, 2048, (False, True), True), (129, 1030, 2048, (False, True), False),
    (64, 1030, 2046, (True, True), True), (64, 1030, 2000, (False, False), False),
    (64, 520, 1030, (True, True), False), (64, 1031, 2048, (False, True), False),
    # only A's rows copied (K no multiple of 8): a B of at most ASYNC_A_ONLY_B_ELEMENTS
    (64, 1984, 492, (True, False), True), (32, 8160, 626, (True, False), True), (128, 5360, 1710, (True, False), False),
    (129, 1984, 492, (True, False), False), (64, 1984, 491, (True, False), False),
    (112, 4280, 954, (True, False), False),    # (of more than ASYNC_A_ONLY_MACS multiply-adds)
    (96, 9408, 154, (True, False), False)])    # (of more than ASYNC_A_ONLY_OUTPUTS outputs)
def test_where_the_cp_async_rule_applies(hopper_interpreter, M, N, K, copied, taken):
    """Only few rows (M <= 128) over a B the padded path would copy (its rows unaligned), of 2**21 elements or more,
    or over a B of at most 6 << 20 elements beside an A it would copy (at most 2**28 multiply-adds and 2**19
    outputs); rows that allow copies of 4 bytes or more (N = 1031, K = 491: one element)."""
    a, b = np.zeros((M, K), np.float16), np.zeros((K, N), np.float16)
    device = skc.current_device()
    cfg = matmul_host._UnalignedRows.config(device, (M, N, K, "f16", True, False), matmul_host.EpilogueSpec(), None,
                                            None, a, b, True, copied)
    assert (cfg is not None and cfg.vector_async) == taken


def test_c_bias_activation_and_out_on_the_direct_path(hopper_interpreter, monkeypatch):
    monkeypatch.setattr(matmul_host, "UNALIGNED_DIRECT_MACS", 2 ** 62)
    M, N, K = 24, 30, 21
    a, b, c, bias = ints(M, K), ints(K, N), ints(M, N), ints(N)
    out = np.full((M, N), np.nan, np.float16)
    assert matmul(a, b, out=out, c=c, beta=2.0, alpha=0.5, bias=bias, activation="relu") is out
    expected = np.maximum(0.5 * exact(a, b) + 2 * c.astype(np.float32) + bias, 0.0)
    assert (expected == 0).any() and (expected > 0).any()
    np.testing.assert_array_equal(out.astype(np.float32), expected)
    assert any(isinstance(plan, matmul_host._UnalignedRows) for plan in matmul_host._PLANS.values())


@pytest.mark.parametrize("limit, autotune, kind", [(24 * 30 * 21, None, "_UnalignedRows"),
                                                   (24 * 30 * 21 - 1, None, "_PaddedRows"),
                                                   (24 * 30 * 21, True, "_PaddedRows")])
def test_the_size_limit_and_autotune_choose_the_path(hopper_interpreter, monkeypatch, limit, autotune, kind):
    """Problems past the size limit, and calls that ask for tuning (the direct path has nothing to tune), are padded."""
    monkeypatch.setattr(matmul_host, "UNALIGNED_DIRECT_MACS", limit)
    a, b = ints(24, 21), ints(21, 30)
    np.testing.assert_array_equal(matmul(a, b, autotune=autotune).astype(np.float32), exact(a, b))
    assert type(next(iter(matmul_host._PLANS.values()))).__name__ == kind


def test_c_bias_activation_and_out(hopper_interpreter):
    M, N, K = 24, 30, 20
    a, b, c, bias = ints(M, K), ints(K, N), ints(M, N), ints(N)
    out = np.full((M, N), np.nan, np.float16)
    got = matmul(a, b, out=out, c=c, beta=2.0, bias=bias, activation="relu")
    assert got is out
    expected = np.maximum(exact(a, b) + 2 * c.astype(np.float32) + bias, 0.0)
    assert (expected == 0).any() and (expected > 0).any()
    np.testing.assert_array_equal(out.astype(np.float32), expected)


def test_aligned_shapes_take_no_copies(hopper_interpreter):
    a, b = ints(40, 64), ints(64, 48)
    np.testing.assert_array_equal(matmul(a, b).astype(np.float32), exact(a, b))
    assert not any(isinstance(plan, matmul_host._PaddedRows) for plan in matmul_host._PLANS.values())


def test_views_of_longer_misaligned_rows_are_copied_as_they_are(hopper_interpreter):
    """K and N multiples of 8, but a and b views of arrays whose rows are 70 long: both copied, as they are."""
    a, b = ints(24, 70)[:, :64], ints(64, 70)[:, :48]
    np.testing.assert_array_equal(matmul(a, b).astype(np.float32), exact(a, b))
    (plan,) = [plan for plan in matmul_host._PLANS.values() if isinstance(plan, matmul_host._PaddedRows)]
    assert plan.copies == (True, True) and plan.stored == ((24, 64), (64, 48)) and plan.gemm.cfg.store == "tma"


@pytest.mark.parametrize("M, N, K, ta, tb, copies", [(24, 30, 64, False, True, (False, False)),
                                                    (24, 30, 21, False, False, (True, True)),
                                                    (37, 32, 64, True, False, (True, False)),
                                                    (24, 32, 21, False, False, (True, False))])
def test_only_the_operands_tma_cannot_read_are_copied_and_out_is_stored_directly_where_tma_cannot(
        hopper_interpreter, M, N, K, ta, tb, copies):
    """A K-major b of rows of K = 64 is read as it is, even where out's rows of N = 30 are stored directly (no copy
    at all); a row-major b of N = 32 is not copied for a's rows of K = 21 (TMA reads past K as zeros); out's rows of
    N = 32 take TMA stores."""
    a = np.ascontiguousarray(ints(K, M)).T if ta else ints(M, K)
    b = np.ascontiguousarray(ints(N, K)).T if tb else ints(K, N)
    np.testing.assert_array_equal(matmul(a, b).astype(np.float32), exact(a, b))
    (plan,) = matmul_host._PLANS.values()
    assert isinstance(plan, matmul_host._PaddedRows) and plan.copies == copies
    assert plan.gemm.cfg.store == ("direct" if N % 8 else "tma") and plan.gemm.gemm == (M, N, K)


def test_a_copied_operand_counts_as_aligned_for_the_tile_rule(hopper_interpreter):
    """The padded path copies A (rows of K = 21: not 16-byte aligned) into rows 128 bytes apart; B's rows of 72 values
    (144 bytes) stay 16 bytes past: the rule reads (0, 16) (tile_rules.shares_b: a cluster along M pays)."""
    a, b = ints(20, 21), ints(21, 72)
    np.testing.assert_array_equal(matmul(a, b).astype(np.float32), exact(a, b))
    (plan,) = matmul_host._PLANS.values()
    assert isinstance(plan, matmul_host._PaddedRows) and plan.copies == (True, False) and plan.unaligned == (0, 16)


def test_torch_tensors(hopper_interpreter):
    torch = pytest.importorskip("torch")
    a, b = torch.randint(-2, 3, (20, 30)).to(torch.bfloat16), torch.randint(-2, 3, (30, 50)).to(torch.bfloat16)
    out = matmul(a, b)
    assert out.shape == (20, 50) and out.is_contiguous()
    assert torch.equal(out.float(), a.float() @ b.float())


def test_the_vector_loader_reads_padded_rows_too(hopper_interpreter):
    """The vector loader copies 16 bytes at a time as TMA does: K = 21 read past a's end before (a review)."""
    from skc.blocks import MatmulConfig

    a, b = ints(16, 21), ints(21, 16)
    out = matmul(a, b, config=MatmulConfig(dtype="f16", loader="vector"))
    np.testing.assert_array_equal(out.astype(np.float32), exact(a, b))


def test_a_batch_whose_rows_tma_cannot_address_runs_per_matrix(hopper_interpreter):
    """Not one launch over the batch (its 3-D maps would need the rows): a GEMM per matrix, each padded."""
    a, b = ints(2, 8, 5), ints(2, 5, 12)
    out = matmul(a, b)
    np.testing.assert_array_equal(out.astype(np.float32), exact(a, b))
    assert any(isinstance(plan, matmul_host._LoopedBatch) for plan in matmul_host._PLANS.values())


@pytest.mark.parametrize("M, N, K, ta, tb", [(24, 30, 21, False, False), (37, 70, 70, True, True),
                                             (24, 30, 64, False, True)])
def test_a_large_out_is_stored_through_tma_and_copied(hopper_interpreter, monkeypatch, M, N, K, ta, tb):
    """Past DIRECT_STORE_ELEMENTS, out's rows of N no multiple of 8 are stored by TMA into the plan's product buffer
    (rows 128 bytes apart), then copied to out, with c, bias, alpha and an activation, out given or not."""
    monkeypatch.setattr(matmul_host, "DIRECT_STORE_ELEMENTS", 0)
    a = np.ascontiguousarray(ints(K, M)).T if ta else ints(M, K)
    b = np.ascontiguousarray(ints(N, K)).T if tb else ints(K, N)
    c, bias = ints(M, N), ints(N)
    out = np.full((M, N), np.nan, np.float16)
    assert matmul(a, b, out=out, c=c, bias=bias, alpha=0.5, activation="relu") is out
    expected = np.maximum(0.5 * exact(a, b) + c.astype(np.float32) + bias, 0.0)
    np.testing.assert_array_equal(out.astype(np.float32), expected)
    np.testing.assert_array_equal(matmul(a, b).astype(np.float32), exact(a, b))
    plans = [plan for plan in matmul_host._PLANS.values() if isinstance(plan, matmul_host._PaddedRows)]
    assert len(plans) == 2 and all(plan.through_product and plan.gemm.cfg.store == "tma" for plan in plans)


@pytest.mark.parametrize("fields", [dict(store="direct"), dict(loader="vector", store="direct"), dict(split_k=2),
                                    dict(loader="vector")])
def test_a_large_out_under_a_config_that_stores_through_a_pointer(hopper_interpreter, monkeypatch, fields):
    """A given configuration that writes out through a pointer (direct stores, split-K) writes rows N apart: such
    an out is not stored through the product buffer, whose rows are 128 bytes apart (found in review: a LaunchError
    in the interpreter, rows written at the wrong places on a GPU)."""
    monkeypatch.setattr(matmul_host, "DIRECT_STORE_ELEMENTS", 0)
    config = MatmulConfig(dtype="f16", tile_m=64, consumers=1, tile_n=64, **fields)
    a, b = ints(40, 150), ints(150, 30)
    np.testing.assert_array_equal(matmul(a, b, config=config).astype(np.float32), exact(a, b))
    a = ints(40, 160)[:, :150]   # (a view of longer rows: copied)
    np.testing.assert_array_equal(matmul(a, b, config=config).astype(np.float32), exact(a, b))


def test_a_vector_loader_config_copies_an_operand_of_longer_rows_tma_could_read(hopper_interpreter):
    """The vector loader reads dense rows through pointers: a view of rows 24 apart (a stride TMA reads) is copied
    for it too (found in review: K = 21 had made a be copied before; without, a LaunchError in the interpreter and
    wrong addresses on a GPU)."""
    a, b = ints(70, 24)[:, :21], np.ascontiguousarray(ints(64, 21)).T
    config = MatmulConfig(dtype="f16", tile_m=64, consumers=1, tile_n=64, loader="vector", store="direct",
                          b_k_major=True)
    np.testing.assert_array_equal(matmul(a, b, config=config).astype(np.float32), exact(a, b))
    (plan,) = matmul_host._PLANS.values()
    assert isinstance(plan, matmul_host._PaddedRows) and plan.copies == (True, True)   # (b's rows of K = 21 too)


def test_autotune_reaches_the_padded_problem(hopper_interpreter, monkeypatch):
    """The configuration is chosen once, for the problem itself (over the copies), with the call's autotune (it was
    chosen for the unpadded problem, then dropped, before the twenty-eighth session's copies)."""
    chosen, choose = [], matmul_host._choose_config
    monkeypatch.setattr(matmul_host, "_choose_config",
                        lambda device, problem, spec, autotune, *rest: (chosen.append((problem[:3], autotune)),
                                                                       choose(device, problem, spec, autotune,
                                                                              *rest))[1])
    matmul(ints(16, 21), ints(21, 16), autotune=True)
    assert chosen == [((16, 16, 21), True)]


def test_an_out_that_requires_grad_and_an_out_written_in_place(hopper_interpreter):
    torch = pytest.importorskip("torch")
    a, b = torch.ones(8, 8, dtype=torch.bfloat16), torch.ones(8, 5, dtype=torch.bfloat16)
    out = torch.empty(8, 5, dtype=torch.bfloat16, requires_grad=True)
    with pytest.raises(skc.LaunchError, match="takes no out"):   # (autograd cannot follow it: torch's out= refuses)
        matmul(a, b, out=out)
    with torch.no_grad():   # (where the product of padded rows is copied into the given out)
        assert torch.equal(matmul(a, b, out=out).detach().float(), torch.full((8, 5), 8.0))
    # N a multiple of 8, K not: the GEMM writes the given out itself (no product to copy)
    a, b, out = torch.ones(8, 5, dtype=torch.bfloat16), torch.ones(5, 8, dtype=torch.bfloat16), None
    out = torch.empty(8, 8, dtype=torch.bfloat16)
    assert matmul(a, b, out=out) is out and torch.equal(out.float(), torch.full((8, 8), 5.0))


@pytest.mark.parametrize("M, ta, tb", [(1, False, False), (24, True, True)])
def test_kept_buffers_take_each_calls_operands(hopper_interpreter, M, ta, tb):
    """What the GPU path keeps a launch stream (matmul_host._Kept), run by the interpreter on torch's CPU tensors:
    two calls through one set of buffers each give their own product, in an out of their own."""
    torch = pytest.importorskip("torch")
    N, K = 30, 21

    def operand(rows, cols, transposed):
        x = torch.randint(-2, 3, (cols, rows) if transposed else (rows, cols)).to(torch.bfloat16)
        return x.t() if transposed else x

    a, b = operand(M, K, ta), operand(K, N, tb)
    matmul(a, b)
    (plan,) = matmul_host._PLANS.values()
    kept = plan._buffers(a)
    first = plan._product(a, b, None, None, None, None, None, None, kept, True)
    a2, b2 = operand(M, K, ta), operand(K, N, tb)
    second = plan._product(a2, b2, None, None, None, None, None, None, kept, True)
    assert torch.equal(first.float(), a.float() @ b.float()) and torch.equal(second.float(), a2.float() @ b2.float())
    assert first.data_ptr() != second.data_ptr() and first.is_contiguous()


def test_a_vector_loader_config_loads_as_wide_as_each_calls_rows_and_addresses(hopper_interpreter):
    """A given vector-loader configuration, TMA stores included, runs through the per-call width choice: rows of 22
    (skc's arrays, which are not copied) take 2-element loads where the config says 8 (a misaligned load before), a
    config's narrower width is kept, and a transposed a of 37 rows takes 1-element loads (it was copied into a
    padded view, which the vector loader refused)."""
    from skc.blocks import MatmulConfig

    config = MatmulConfig(tile_m=64, consumers=1, tile_n=64, dtype="f16", loader="vector")
    a, b = ints(24, 22), ints(22, 32)
    out = matmul(skc.to_device(a), skc.to_device(b), config=config)
    np.testing.assert_array_equal(out.numpy().astype(np.float32), exact(a, b))
    (plan,) = matmul_host._PLANS.values()
    assert isinstance(plan, matmul_host._UnalignedRows) and list(plan.plans) == [2]
    matmul_host._PLANS.clear()
    a, b = ints(24, 40), ints(40, 36)
    np.testing.assert_array_equal(matmul(a, b, config=replace(config, store="direct", vector_width=2)).astype(
        np.float32), exact(a, b))
    assert list(next(iter(matmul_host._PLANS.values())).plans) == [2]   # (rows of 40 and 36 would take 4)
    matmul_host._PLANS.clear()
    a, b = np.ascontiguousarray(ints(40, 37)).T, ints(40, 64)
    np.testing.assert_array_equal(matmul(a, b, config=replace(config, a_k_major=False)).astype(np.float32),
                                  exact(a, b))
    assert list(next(iter(matmul_host._PLANS.values())).plans) == [1]


def test_kept_buffers_stay_within_their_budget_over_all_plans(monkeypatch):
    """The GPU path's bookkeeping, on torch CPU tensors that say they are CUDA ones: a plan keeps a set a launch
    stream while all plans' sets fit KEPT_TOTAL_BYTES, then copies as an unkept plan does; a plan's bytes return to
    the budget when it goes."""
    import gc

    torch = pytest.importorskip("torch")

    class Cuda(torch.Tensor):
        is_cuda = property(lambda self: True)

    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: False)
    monkeypatch.setattr(skc, "launch_stream", lambda stream, *arrays: stream or 0)
    from skc.blocks.epilogue import EpilogueSpec

    M, N, K = 24, 30, 21
    set_bytes = 2 * (M * 64 + K * 64)   # a's and b's rows 128 bytes apart
    monkeypatch.setattr(matmul_host, "KEPT_TOTAL_BYTES", matmul_host._kept_total[0] + 2 * set_bytes)
    a = torch.ones(M, K, dtype=torch.bfloat16).as_subclass(Cuda)
    problem = (M, N, K, "bf16", True, False)
    first, second = (matmul_host._PaddedRows(skc.current_device(), problem, (False, False), (True, True),
                                             EpilogueSpec(), None, None, (True, True)) for _ in range(2))
    assert first.set_bytes == set_bytes
    kept = first._kept(a, None)
    assert kept is not None and first._kept(a, None) is kept            # one set a stream
    assert first._kept(a, 5) is not None                                 # another stream: a second set
    assert second._kept(a, None) is None                                 # the budget is spent
    del first, kept
    gc.collect()
    assert second._kept(a, None) is not None                             # the first plan's bytes came back


def test_copies_have_rows_128_bytes_apart(hopper_interpreter):
    """TMA reads a row that starts at no multiple of 128 bytes in two pieces: the copies' rows are 64 elements
    apart (or a multiple), their values the operand's; a transposed a's copy keeps its layout."""
    torch = pytest.importorskip("torch")
    a = (torch.arange(5 * 21) % 7 - 3).to(torch.bfloat16).reshape(5, 21)
    flipped = (torch.arange(21 * 37) % 5 - 2).to(torch.bfloat16).reshape(21, 37).T   # a transposed a of 37 rows
    for x in (a, flipped):
        b = torch.ones(21, 8, dtype=torch.bfloat16)
        matmul_host._PLANS.clear()
        assert torch.equal(matmul(x, b).float(), x.float() @ b.float())
        (plan,) = matmul_host._PLANS.values()
        buffers = plan._buffers(x)
        plan._copy(x, b, buffers, None, False)
        copy = buffers.a.T if x is flipped else buffers.a
        assert buffers.b is None and torch.equal(copy, x)
        assert copy.stride() == ((1, 64) if x is flipped else (64, 1))


@pytest.mark.parametrize("store", ["tma", "direct"])
def test_a_vector_loader_config_on_the_padded_path_reads_dense_copies(hopper_interpreter, store):
    """The vector loader reads a and b through pointers, as dense rows: a given vector-loader config reads
    contiguous rows of any length itself (the direct path; out's rows of N = 20 stored directly), and a view of
    longer rows is copied densely, then read at each call's widest loads."""
    config = MatmulConfig(dtype="f16", loader="vector", store=store)
    a, b = ints(16, 21), ints(21, 20)
    np.testing.assert_array_equal(matmul(a, b, config=config).astype(np.float32), exact(a, b))
    assert isinstance(next(iter(matmul_host._PLANS.values())), matmul_host._UnalignedRows)
    a = ints(16, 30)[:, :21]   # a view of rows 30 apart
    np.testing.assert_array_equal(matmul(a, b, config=config).astype(np.float32), exact(a, b))
    (plan,) = [plan for plan in matmul_host._PLANS.values() if isinstance(plan, matmul_host._PaddedRows)]
    assert plan.copies == (True, True) and isinstance(plan.gemm, matmul_host._UnalignedRows)


def test_a_config_for_few_rows_in_a_cluster_covers_more_rows(hopper_interpreter):
    """covering(M) grows a_rows in groups of 8 a block of a cluster sharing A (24 rows: 32, two shares of 16)."""
    config = MatmulConfig(tile_m=64, consumers=1, tile_n=64, dtype="f16", cluster_n=2, a_rows=16, stages=2)
    assert config.covering(24).a_rows == 32 and config.covering(60).a_rows == 64 and config.covering(64).a_rows == 0
    for M in (16, 24):
        a, b = ints(M, 64), ints(64, 128)
        np.testing.assert_array_equal(matmul(a, b, config=config).astype(np.float32), exact(a, b))


@pytest.mark.parametrize("shifted", ["a", "b", "out", "a-transposed"])
def test_operands_at_addresses_tma_cannot_map_run_through_aligned_copies(hopper_interpreter, monkeypatch, shifted):
    """Rows 16-byte aligned apart, but the first one element into its buffer (x[:, 1:]): no tensor map addresses it
    (a GPU refused the call), while the interpreter, which maps arrays into memory of its own, read it as it was.
    The GemmPlan copies such an operand, and only it, into new memory of its strides, on the GPU and here alike;
    out's copy is written back, and nothing of out's buffer outside out."""
    from skc.blocks import host_plans

    copied, made = [], []
    through, copy = host_plans.GemmPlan._through_aligned_copies, host_plans.aligned_copy
    monkeypatch.setattr(host_plans.GemmPlan, "_through_aligned_copies",
                        lambda plan, *args: copied.append(1) or through(plan, *args))
    monkeypatch.setattr(host_plans, "aligned_copy", lambda x: made.append(x) or copy(x))
    M, N, K = 40, 48, 64
    a, b = ints(M, K + 8)[:, 1:K + 1], ints(K, N)
    if shifted == "a-transposed":
        a = ints(K, M + 8)[:, 1:M + 1].T
    elif shifted == "b":
        a, b = ints(M, K), ints(K, N + 8)[:, 3:N + 3]
    elif shifted == "out":
        a = ints(M, K)
    buffer = np.full(M * N + 8, np.nan, np.float16)
    out = buffer[1:1 + M * N].reshape(M, N) if shifted == "out" else None
    bias = ints(N)
    got = matmul(a, b, out, bias=bias, activation="relu")
    np.testing.assert_array_equal(got.astype(np.float32), np.maximum(exact(a, b) + bias, 0))
    assert copied == [1] and len(made) == 1 and made[0].base is not None   # (the shifted view alone)
    if out is not None:
        assert got is out and np.isnan(buffer[0]) and np.isnan(buffer[1 + M * N:]).all()
