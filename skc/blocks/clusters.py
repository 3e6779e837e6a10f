"""Clusters as the blocks see them: the kernel's cluster shape, and which run-time values the blocks of a cluster
hold alike. A block that works across a cluster (a scheduler handing a cluster's blocks neighbouring tiles, a
pipeline whose stages the cluster's producers fill, a loader multicasting a tile) checks that the kernel is launched
in clusters of its size; a scheduler records how many blocks of a cluster hand out each tile coordinate alike
(`share`), and a loader that multicasts the tile at an origin reads it back (`sharers`): a tile the blocks of a
cluster do not all load from the same origin would be their copies mixed."""
from __future__ import annotations

import skc
from skc import frontend


@frontend.host
def check_kernel_cluster(block: str, blocks: int, fix: str):
    """A compile error unless the kernel is launched in clusters of `blocks` blocks along x, as `block` (the text of
    the block's call) counts on; `fix` says how to make the block for the kernel's clusters instead. The kernel may say
    its clusters (@skc.kernel(cluster=...) or skc.hopper.kernel_attributes(cluster=...)) before or after its blocks:
    a kernel of clusters already is checked at once, and every block again once the kernel's clusters are final."""
    if blocks > 1:
        codegen = frontend.current()
        loc = codegen.loc   # (the user's line that made the block, for a message at the kernel's end)
        if tuple(codegen.cluster) != (1, 1, 1):
            _check(block, blocks, fix, loc)
        codegen.at_end(lambda: _check(block, blocks, fix, loc))


def _check(block: str, blocks: int, fix: str, loc):
    shape = tuple(frontend.current().cluster)
    if shape != (blocks, 1, 1):
        raise skc.CompileError(
            f"{block} works across clusters of {blocks} blocks along x; the kernel is launched in clusters of "
            f"{'x'.join(map(str, shape))} (the blocks' ranks and peers would not be the ones it counts on)", loc,
            hint=f"say the kernel's clusters: skc.hopper.kernel_attributes(cluster=({blocks}, 1, 1)) or "
                 f"@skc.kernel(cluster=({blocks}, 1, 1)), and no others; or {fix}")


@frontend.host
def share(holder, attribute: str, blocks: int, source: str):
    """Record that `holder.attribute` (a run-time value, or the variable an attribute keeps it in) is the same in
    `blocks` blocks of a cluster (1: each block's own), as `source` (the block's text, for messages) hands it out."""
    # (plain Python: the variable itself, not a value read from it)
    frontend.tag(__name__, getattr(holder, attribute), blocks, source)


@frontend.host
def sharers(value):
    """(blocks, source) that `share` recorded for a run-time value (or for the variable it was read from), else None:
    a value of the user's, of which nothing is known."""
    return frontend.tagged(__name__, value)
