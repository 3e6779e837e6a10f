"""Copies of matrices whose rows TMA cannot address (their starts no whole number of 16 bytes apart) into buffers
whose rows are: what matmul's host path does, in one launch, before a GEMM over such operands
(matmul_host._PaddedRows). Each copy is a row-major matrix, `rows` x `cols` elements `stride` apart from row to row,
into one whose rows are `pitch` elements apart; a block copies one span of SPAN columns of one row, each thread RUN
elements BLOCK apart (a warp's loads and stores touch consecutive elements)."""
import skc

BLOCK = 128
RUN = 4
SPAN = BLOCK * RUN


@skc.func
def _copy_span(src, dst, cols, stride, pitch, block):
    """Block `block` of a copy: row block // spans, columns from (block % spans) * SPAN."""
    spans = skc.cdiv(cols, SPAN)
    row = skc.i64(block // spans)
    first = (block % spans) * SPAN + skc.thread_id(0)
    for i in skc.static_range(RUN):
        col = first + i * BLOCK
        inside = col < cols
        value = skc.load(src + (row * stride + col), mask=inside)
        skc.store(dst + (row * pitch + col), value, mask=inside)


@skc.kernel(block=BLOCK)
def copy_rows(src0, dst0, cols0: skc.i32, stride0: skc.i64, pitch0: skc.i64, blocks0: skc.i32,
              src1, dst1, cols1: skc.i32, stride1: skc.i64, pitch1: skc.i64):
    """Two copies in one launch: the grid's first `blocks0` blocks (blocks(rows0, cols0)) make the first, the
    rest the second (none: a grid of blocks0)."""
    block = skc.block_id(0)
    if block < blocks0:
        _copy_span(src0, dst0, cols0, stride0, pitch0, block)
    else:
        _copy_span(src1, dst1, cols1, stride1, pitch1, block - blocks0)


def blocks(rows: int, cols: int) -> int:
    """copy_rows' blocks for a copy of rows x cols elements."""
    return rows * -(-cols // SPAN)
