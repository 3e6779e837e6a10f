"""The random calls' draws (gemm_cases.py, attention_cases.py, conv_cases.py): deterministic, within their
bounds, covering what they mean to."""
import random

import gemm_cases


def test_a_seed_draws_the_same_cases():
    assert gemm_cases.cases(200, 5) == gemm_cases.cases(200, 5)
    assert gemm_cases.cases(200, 5) != gemm_cases.cases(200, 6)


def test_cases_stay_within_their_bounds_and_cover_every_kind():
    cases = gemm_cases.cases(2000, 11)
    for case in cases:
        batch = max(case.batch, 1)
        assert case.M * case.N * case.K * batch <= gemm_cases.MOST_VALUES
        assert max(case.M * case.K * batch, case.M * case.N * batch) <= gemm_cases.MOST_ELEMENTS
        assert min(case.M, case.N, case.K) >= 1
        if case.kind == "fp8":   # what the fp8 GEMM takes: K-major operands, K a multiple of 16 (128 block-wise)
            assert case.b_k_major and not case.a_transposed and not case.batch and case.N % 8 == 0
            assert case.K % (128 if case.block_scaled else 16) == 0
            assert not (case.block_scaled and (case.fast_accum or case.b_e5m2))
    kinds = {(c.kind, c.block_scaled, c.fast_accum) for c in cases}
    assert kinds == {("bf16", False, False), ("fp16", False, False), ("fp8", False, False), ("fp8", False, True),
                     ("fp8", True, False)}
    rows = [c.M for c in cases]
    for _, low, high in gemm_cases.ROW_BANDS:   # every band of rows drawn, unaligned ones among them
        assert any(low <= m <= high for m in rows)
    assert any(c.M % 8 for c in cases) and any(c.K % 8 for c in cases if c.kind != "fp8")
    assert any(c.batch and c.b_batched for c in cases) and any(c.batch and not c.b_batched for c in cases)


def test_labels_name_what_differs():
    case = gemm_cases.draw(random.Random(3))
    assert case.label().startswith(f"{case.kind} {case.M}x{case.N}x{case.K}")
    assert "bias" in gemm_cases.Case("bf16", 8, 8, 8, bias=True).label()
    assert "out made" in gemm_cases.Case("bf16", 8, 8, 8, out_given=False).label()


def test_attention_draws_stay_within_bounds_and_cover_the_options():
    import attention_cases

    cases = attention_cases.cases(1000, 12)
    assert cases == attention_cases.cases(1000, 12)
    for case in cases:
        assert case.H % case.Hkv == 0 and case.D in (64, 128, 256) and min(case.Sq, case.Sk, case.B) >= 1
        assert case.B * case.H * case.Sq * case.Sk <= attention_cases.MOST_SCORES
    for field in ("causal", "lse", "repeated"):
        assert {getattr(c, field) for c in cases} == {False, True}
    assert {c.layout for c in cases} == {"bhsd", "bshd"} and {c.D for c in cases} == {64, 128, 256}
    assert any(c.Sq != c.Sk for c in cases) and any(c.Hkv < c.H for c in cases) and any(c.scale for c in cases)


def test_conv_draws_have_an_output_and_cover_the_options():
    import conv_cases

    cases = conv_cases.cases(1000, 13)
    assert cases == conv_cases.cases(1000, 13)
    for case in cases:
        P, Q = case.output_size()
        assert P >= 1 and Q >= 1
        assert case.padding != "same" or case.stride == (1, 1)
    assert {c.padding for c in cases} >= {0, "same", "valid"} and any(isinstance(c.padding, tuple) for c in cases)
    assert any(c.C == 3 for c in cases) and any(c.C % 8 for c in cases) and any(c.dilation != (1, 1) for c in cases)
    assert conv_cases.Case("bf16", 1, 8, 9, 9, 8, 3, 3, (2, 2), 1).output_size() == (5, 5)
