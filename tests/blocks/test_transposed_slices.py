"""matmul takes transposed views of row-major arrays whose rows are longer than the view's (b = W[:, :K].T), as it
takes row-major views with long rows (was: "operands must be row-major or transposed views of row-major arrays")."""
import pytest

from skc.blocks import matmul

torch = pytest.importorskip("torch")


def ints(*shape):
    return torch.randint(-2, 3, shape).to(torch.bfloat16)


def test_bf16_transposed_slices(hopper_interpreter):
    weight, activations = ints(64, 48), ints(32, 48)
    b = weight[:, :32].T                  # K x N = 32 x 64, strides (1, 48)
    a = activations[:, 8:40].T            # M x K = 32 x 32, a transposed view too
    assert torch.equal(matmul(a, b).float(), a.float() @ b.float())


def test_fp8_transposed_slice(hopper_interpreter):
    weight = torch.randint(-3, 4, (128, 288)).float()
    a = torch.randint(-3, 4, (64, 256)).float()
    b = weight.to(torch.float8_e4m3fn)[:, :256].T    # K x N, column-major with rows of 288
    one = torch.ones(())
    out = matmul(a.to(torch.float8_e4m3fn), b, scale_a=one, scale_b=one, out_dtype=torch.float32)
    assert torch.equal(out, a @ weight[:, :256].T)


@pytest.mark.parametrize("which", ["transposed", "row-major"])
def test_the_vector_loader_reads_dense_copies_of_views_with_longer_rows(hopper_interpreter, which):
    """The vector loader reads a and b through plain pointers as dense storage: a view whose rows are longer than
    its own would be read at the wrong addresses (on the GPU: 188 off at 256³). It was refused when the plan was
    made; since the twenty-eighth session such views are copied densely first (matmul_host._PaddedRows), as views
    TMA cannot read are. TMA maps carry the row stride and take them as they are."""
    from skc.blocks import MatmulConfig, matmul_host

    weight, activations = ints(64, 48), ints(32, 40)
    b = weight[:, :32].T if which == "transposed" else ints(32, 80)[:, :64]   # K x N = 32 x 64, rows of 48 or 80
    a = activations[:, :32]
    config = MatmulConfig.for_problem(32, 64, 32, "bf16", True, which == "transposed", loader="vector", cluster_m=1)
    assert torch.equal(matmul(a, b, config=config).float(), a.float() @ b.float())
    (plan,) = matmul_host._PLANS.values()
    assert isinstance(plan, matmul_host._PaddedRows) and plan.copies == (True, True)
    assert torch.equal(matmul(a, b).float(), a.float() @ b.float())   # the TMA path takes them
