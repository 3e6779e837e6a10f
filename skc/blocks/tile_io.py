"""TileIO: moving tiles from global to shared memory.

A loader fills a pipeline stage with the payload's operand tiles at the coordinates it is given:
`load(stage, k, a=row0, b=col0)` copies each named tile from its origin along the tile's rows (M for a
GEMM's A, N for its B; whatever the caller's problem maps there) at k-step k. Which coordinates an
operand takes is the caller's business, not the loader's. A loader also says how it works with the
pipeline: how many arrivals complete a stage (`arrivals`) and which of the producer's threads run the
loading loop (`is_issuing()`).

`TmaLoader` copies with TMA (one elected thread issues them; the copies complete the stage's full
barrier by their byte count). `VectorLoader` does the same job without TMA: every thread of the producer
warpgroup copies vectors of 8 elements (16 bytes), or fewer for rows TMA cannot address, through its registers or
(`asynchronous`) with cp.async, then arrives on the barrier.
"""
from __future__ import annotations


import skc
from skc import frontend
from skc.ir.ops_async import CP_ASYNC_BYTES

from . import clusters, scheduler
from .arguments import check_has, check_tensor_map, compiling, is_integer, is_tensor_map, refuse
from .layout import OperandLayout
from .payload import note_elements
from .pipeline import check_stage
from .roles import check_role


def _origins(loader: str, names, origins: dict) -> dict:
    """The origin of every operand (checked at compile time against the operands the loader copies). A tile
    whose layout `follows` another operand (the scales that go with A's rows) takes that operand's origin."""
    if not isinstance(names, dict):
        names = dict.fromkeys(names)
    origins = dict(origins)
    for name, layout in names.items():
        follows = getattr(layout, "follows", None)
        if follows is not None and name not in origins and follows in origins:
            origins[name] = origins[follows]
    if set(origins) != set(names):
        missing, extra = sorted(set(names) - set(origins)), sorted(set(origins) - set(names))
        raise frontend.current().error(
            f"{loader} copies {', '.join(names)}: give each one origin ({', '.join(f'{n}=...' for n in names)})"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; no operand {', '.join(extra)}" if extra else ""),
            hint=f"{loader}(stage, k, {', '.join(f'{n}=...' for n in names)}): the payload's tiles, each from its "
                 "origin" + (f"; to load {', '.join(extra)} too, add it to the TilePayload" if extra else ""))
    return origins


@frontend.host
def check_spacing(loader: str, name: str, layout, origin):
    """A tile loaded at an origin a scheduler handed out is as long as the scheduler's tiles are apart along it (the
    last coordinate of a batch's origin): a shorter one leaves the rest of every output tile uncomputed, a longer one
    computes its neighbour's rows again. An origin of the user's, or a layout that does not say its rows, is taken on
    trust."""
    scheduler.check_order(origin, "loaded", loader)
    known = scheduler.spacing(origin[-1] if isinstance(origin, tuple) and origin else origin)
    rows = getattr(layout, "rows", None)
    if known is None or not isinstance(rows, int) or rows == known[0]:
        return
    extent, unit, source, parameter = known
    raise frontend.current().error(
        f"{loader} loads tile '{name}' of {rows} rows at {source}, whose tiles are {extent} {unit} apart: "
        + (f"{unit} {rows} to {extent - 1} of every output tile would never be computed" if rows < extent else
           f"each tile would be computed again over {rows - extent} {unit} of the next"),
        hint=f"make the scheduler's tiles as long as the payload's: {parameter}={rows}, or tile '{name}' "
             f"{extent} rows long")


def _check_producer_role(loader):
    """A loader fills the producer's stages: in the consumers' code its copies would overwrite the stage a consumer
    reads, and arrive on a barrier already complete."""
    check_role(type(loader).__name__, "producer", hint="call the loader in the producer branch "
               "(`if roles.is_producer():`), on a stage of `with producer.acquire() as stage:`")


def check_payload(block: str, payload):
    """A loader's payload: the TilePayload its stages hold (an object with `layouts`)."""
    check_has(block, "payload", payload, ("layouts",), "a TilePayload (what a stage holds)",
              "give the TilePayload the pipeline was made of: TilePayload(a=OperandLayout(...), ...)")


def check_origins(loader: str, origins: dict, layouts: dict = None):
    """Where each tile starts: integers, or (matrix, row) pairs of integers for a batch's tile: as many as its TMA
    box has dimensions beside k (a pair for a single matrix's tile failed as "cannot convert tuple ... to i32")."""
    for name, origin in origins.items():
        parts = origin if isinstance(origin, tuple) else (origin,)
        if not parts or not all(is_integer(part) for part in parts):
            refuse(loader, f"origin of tile '{name}' ({name}=...)", "an integer row (or a tuple of integers, for a "
                   "tile of several dimensions)", origin, "give the tile's first row, such as tile.row0 or tile.col0")
        layout = (layouts or {}).get(name)
        box = layout.box() if hasattr(layout, "box") else ()
        if len(box) >= 2 and len(parts) != len(box) - 1:
            wanted = "one integer (its first row)" if len(box) == 2 else \
                f"a tuple of {len(box) - 1} integers (its matrix, then its first row)"
            refuse(loader, f"origin of tile '{name}' ({name}=...)", f"{wanted}: the tile's box has {len(box)} "
                   "dimensions", origin, f"{name}=tile.row0 for a single matrix's tile, {name}=(tile.batch, "
                   "tile.row0) for a BatchedOperandLayout's")


def _check_arrivals(loader, stage):
    """The stage's full barrier completes after the arrivals this loader makes (the pipeline was given the loader):
    with fewer, a stage would be read before its copies land; with more, it would never be read."""
    expected = getattr(stage, "arrivals", loader.arrivals)   # (a stage of another pipeline may not say)
    if expected != loader.arrivals:
        raise frontend.current().error(
            f"{type(loader).__name__} completes a stage with {loader.arrivals} arrival(s); this stage's pipeline "
            f"waits for {expected}, so its stages would complete "
            + ("before their copies land" if expected < loader.arrivals else "never"),
            hint="give the pipeline the loader that fills it: InputTilePipeline(payload, stages, load, ...)")


class TmaLoader:
    """Loads the payload's operand tiles at k-step k into a stage, one TMA box per 128-byte chunk of each
    tile. `maps` name a tensor map per payload tile (`a=`, `b=`). One thread issues the copies and arrives
    once, with the stage's byte count; only the first warp of the producer runs the loading loop."""

    arrivals = 1  # the issuing thread's arrive.expect_tx; the copies complete the transaction bytes

    def __init__(self, payload, multicast=None, extents=None, **maps):
        loader = type(self).__name__
        check_payload(loader, payload)
        self.layouts = payload.layouts
        self.maps = maps
        # extents = {tile name: its operand's rows (a run-time value)} for K-major tiles loaded in row shares: a
        # share that starts past the operand's last row is not loaded, nor counted in the stage's bytes (TMA fills
        # a box past the end with zeros, slowly: the last row of a GEMM's tiles ran 1.3-1.6x as long as a full
        # one, benchmarks/NOTES.md, twenty-fourth session). The rows it would fill keep what the stage held: the
        # caller's outputs from them must never be stored (a GEMM's rows past M).
        self.extents = dict(extents or {})
        for name in self.extents:
            layout = self.layouts.get(name)
            if layout is None or not layout.k_major or _row_shares(layout) < 2:
                raise frontend.current().error(
                    f"TmaLoader skips the row shares of K-major tiles loaded in shares past their operand's rows; "
                    f"'{name}' is " + ("no payload tile" if layout is None else "not one"),
                    hint="give extents only for tiles whose layout has row_shares > 1 and k_major")
            if len(layout.box()) != 2:   # (a batch's tile: its origin is (matrix, row), its rows one matrix's)
                raise frontend.current().error(
                    f"TmaLoader skips row shares past the rows of one matrix; tile '{name}' is a batch's (a "
                    f"{len(layout.box())}-D box)", hint="give extents only for tiles of a single matrix")
        in_kernel = compiling()
        unknown = sorted(set(maps) - set(self.layouts))
        if unknown:   # (a map the payload has no tile of was never loaded, silently)
            raise frontend.current().error(
                f"{loader} is given a tensor map for {', '.join(unknown)}, which its payload has no tile of: it would "
                f"never be loaded", hint=f"add the tile to the TilePayload ({unknown[0]}=OperandLayout(...)), or leave "
                                         "its map out")
        for name, layout in self.layouts.items():
            if name not in maps:
                raise frontend.current().error(
                    f"TmaLoader has no tensor map for payload tile '{name}'",
                    hint=f"give one by the tile's name: "
                         f"{loader}(payload, {', '.join(f'{n}=...' for n in self.layouts)})")
            if type(self) is TmaLoader and in_kernel:   # (a subclass's maps may be of its own kind: Im2colLoader's)
                check_tensor_map(loader, f"map for tile '{name}' ({name}=...)", maps[name])
            map_type = getattr(maps[name], "type", None)
            elem = getattr(map_type, "elem", None)
            elem_bytes = getattr(layout, "elem_bytes", None)   # (a layout of the user's may not say)
            if elem is not None and elem_bytes is not None and elem.bits // 8 != elem_bytes:
                raise frontend.current().error(
                    f"the tensor map for payload tile '{name}' holds {elem} ({elem.bits // 8}-byte elements); the "
                    f"tile's layout takes {layout.elem_bytes}-byte elements",
                    hint="make the map of the operand the payload was built for")
            box, wanted = getattr(map_type, "box", ()), layout.box() if hasattr(layout, "box") else ()
            if box and wanted and _unit_free(box) != _unit_free(wanted):
                # (a box of other extents brings other bytes than the stage expects: a deadlock, or a copy past the
                # tile into the next one)
                raise frontend.current().error(
                    f"the tensor map for payload tile '{name}' copies boxes of {'x'.join(map(str, box))}; the tile's "
                    f"layout loads boxes of {'x'.join(map(str, wanted))}",
                    hint=f"make the map with box={wanted} (the layout's box())")
            swizzle = getattr(map_type, "swizzle", None)
            if swizzle is not None and swizzle != getattr(layout, "swizzle", swizzle):
                raise frontend.current().error(
                    f"the tensor map for payload tile '{name}' swizzles {swizzle} bytes; the tile's layout is "
                    f"{layout.swizzle}-byte swizzled", hint="make the map with the layout's swizzle "
                    "(MatmulConfig.swizzle(name))")
        if in_kernel:
            note_elements(payload, {name: maps[name].type.elem for name in self.layouts
                                    if is_tensor_map(maps[name]) and getattr(maps[name].type, "elem", None) is not None})
        # multicast = (tile name, blocks): that tile is the same for the cluster's blocks; each block
        # loads its share of the tile's chunks (or, a layout in row shares, its share of every chunk's rows) into
        # every block of the cluster.
        if multicast is not None and not (isinstance(multicast, tuple) and len(multicast) == 2
                                          and multicast[0] in self.layouts and isinstance(multicast[1], int)):
            refuse(loader, "multicast", f"a pair (tile name, blocks), the tile one of {', '.join(self.layouts)}",
                   multicast, "multicast=('b', 2): the two blocks of a cluster share tile b, each loading half of it")
        if not isinstance(extents, (dict, type(None))):
            refuse(loader, "extents", "a dict {tile name: its operand's rows}", extents, "extents={'a': M}")
        self.shared_tile, self.cluster = multicast if multicast is not None else (None, 1)
        if self.cluster > 1:
            layout = self.layouts[self.shared_tile]
            shares = _row_shares(layout)
            if shares > 1 and shares != self.cluster:
                raise frontend.current().error(f"tile '{self.shared_tile}' is loaded in {shares} shares of its rows; "
                                               f"a cluster of {self.cluster} loads one share a block")
            if shares == 1 and layout.chunks % self.cluster:
                raise frontend.current().error(f"tile '{self.shared_tile}' has {layout.chunks} chunks; a cluster of "
                                               f"{self.cluster} must split them evenly")
            if self.shared_tile in self.extents:
                raise frontend.current().error(f"tile '{self.shared_tile}' is shared out between a cluster's blocks "
                                               "by its row shares: it cannot also skip the ones past its rows")
            clusters.check_kernel_cluster(f"TmaLoader(..., multicast=('{self.shared_tile}', {self.cluster}))",
                                          self.cluster, "load without multicast (multicast=None)")
        self.rank = self.issuer = None  # run-time values, made by is_issuing() (else by each call)

    def is_issuing(self):
        """Whether this thread runs the loading loop: the first warp of the producer warpgroup (the others
        rest); its first thread issues the copies."""
        rank, issuer = self.threads()
        self.rank = rank
        self.issuer = issuer
        target = skc.current_target()
        return skc.thread_index() % target.warpgroup_size < target.warp_size

    def threads(self):
        """(this block's rank in the cluster, whether this thread issues the copies)."""
        rank = skc.hopper.cluster_rank() if self.cluster > 1 else 0
        return rank, skc.thread_index() % skc.current_target().warpgroup_size == 0

    def issuing(self) -> tuple:
        """threads(), or, after is_issuing() made them, (None: its rank, its issuer)."""
        return (None, self.issuer) if self.issuer is not None else self.threads()

    def __call__(self, stage, k, **origins):
        """Copy each operand's tile from its origin (a=..., b=...) at k-step k into the stage."""
        check_stage(type(self).__name__, stage)
        if type(self) is TmaLoader:   # (one made on the host, for its sizes, holds the host's maps: it failed deep
            for name, given in self.maps.items():   # inside, "expected a number or a run-time value")
                if getattr(given, "__skc_tensor_map__", False):
                    raise frontend.current().error(
                        f"this TmaLoader was made on the host, with the host's skc.TensorMap for tile '{name}': a "
                        "kernel loads through its own TensorMap parameters",
                        hint="make the loader inside the kernel from the kernel's skc.TensorMap parameters (one made "
                             "on the host serves for its sizes only)")
        # (a subclass may read its origins otherwise: Im2colLoader's (group, row0) for tiles of one matrix's box)
        check_origins(type(self).__name__, origins, self.layouts if type(self) is TmaLoader else None)
        if not is_integer(k):
            refuse(type(self).__name__, "k", "an integer k-step", k, "give the k-step's index (its tiles start at "
                   "k · the tile's k)")
        for name in set(origins) & set(self.layouts):   # (the tiles that follow another take its origin: not theirs)
            check_spacing(type(self).__name__, name, self.layouts[name], origins[name])
        origins = _origins("TmaLoader", self.layouts, origins)
        _check_producer_role(self)
        _check_arrivals(self, stage)
        self.check_stage_layouts(stage)
        cluster = getattr(stage, "cluster", self.cluster)   # (a stage of another pipeline may not say)
        if self.cluster > 1 and cluster != self.cluster:
            raise frontend.current().error(
                f"this TmaLoader multicasts tile '{self.shared_tile}' to the {self.cluster} blocks of a cluster; the "
                f"stage's pipeline frees a stage once the consumers of {cluster} block(s) released it, so a block's "
                f"stage could be overwritten by a peer's copies while its own consumers still read it",
                hint=f"make the pipeline with cluster={self.cluster}: InputTilePipeline(..., cluster={self.cluster})")
        if self.cluster > 1:
            self.check_shared_origin(origins[self.shared_tile])
        first_k = [k * layout.k for layout in self.layouts.values()]
        rank, issuing = self.issuing()
        if issuing:
            skc.hopper.mbarrier_arrive_tx(stage.full, self.stage_bytes(origins))
            for (name, layout), k0 in zip(self.layouts.items(), first_k):
                if name == self.shared_tile and self.cluster > 1:
                    self.load_shared(getattr(stage, name), stage.full, self.maps[name], layout, origins[name], k0,
                                     rank)
                elif name in self.extents:
                    self.load(getattr(stage, name), stage.full, self.maps[name], layout, origins[name], k0,
                              self.extents[name])
                else:   # (a subclass's load may take no extent: conv2d's im2col loader)
                    self.load(getattr(stage, name), stage.full, self.maps[name], layout, origins[name], k0)

    @frontend.host
    def check_stage_layouts(self, stage):
        """The stage's tiles are laid out as the loader's payload says: its boxes land as the stage's reader reads
        them (another layout, K- for MN-major, other rows or depth, is read as other elements, or written past)."""
        for name, layout in self.layouts.items():
            tile = getattr(stage, name, None)
            found = getattr(tile, "layout", layout)   # (a stage of another kind may not say)
            if found is not layout and found != layout:
                raise frontend.current().error(
                    f"this TmaLoader was made for payload tile '{name}' laid out as {layout}; the stage's pipeline "
                    f"holds it as {found}", hint="make the loader and the pipeline from the same payload")

    @frontend.host
    def check_shared_origin(self, origin):
        """The blocks of a cluster each load a share of the multicast tile into all of them: from one origin, or the
        tile they share is pieces of several. An origin a scheduler hands each block of its own (or clusters of
        another size) is refused (a value of the user's is taken on trust)."""
        for coordinate in origin if isinstance(origin, tuple) else (origin,):
            known = clusters.sharers(coordinate)
            if known is not None and known[0] != self.cluster:
                blocks, source = known
                raise frontend.current().error(
                    f"this TmaLoader multicasts tile '{self.shared_tile}' to the {self.cluster} blocks of a cluster, "
                    f"which must all load it from one origin; its origin is {source}, which is not the same in the "
                    f"cluster's {self.cluster} blocks: each block's stage would hold pieces of several tiles",
                    hint=f"make the scheduler for clusters of {self.cluster} along the shared operand: "
                         f"TileScheduler(..., cluster_m={self.cluster}) when the shared tile's origin is tile.col0, "
                         f"cluster_n={self.cluster} when it is tile.row0")

    def stage_bytes(self, origins=None):
        """The bytes a stage's copies bring: a compile-time int, or, with `extents`, a run-time one that leaves out
        the row shares past the operands' rows (for the tiles at `origins`)."""
        # (loaded_bytes is optional in a layout's interface: bytes where a stage loads the whole tile)
        whole = sum(getattr(layout, "loaded_bytes", layout.bytes) for layout in self.layouts.values())
        if not self.extents:
            return whole
        if origins is None:
            raise frontend.current().error(
                "this TmaLoader skips row shares past its operands' rows, so a stage's bytes depend on the tiles' "
                "origins", hint="call stage_bytes(origins) with the origins given to the loader (a=..., b=...)")
        for name, extent in self.extents.items():
            layout = self.layouts[name]
            shares, share_bytes = _row_shares(layout), layout.loaded_bytes // _row_shares(layout)
            # (the first share always: a cluster's tile may lie wholly past the operand's rows)
            loaded = skc.maximum(skc.minimum(skc.cdiv(extent - origins[name], layout.share_rows), shares), 1)
            whole = whole - (shares - loaded) * share_bytes
        return whole

    def prefetch(self):
        """Before the first stage: the issuing thread fetches its tensor maps' descriptors, so that the first copies
        do not wait for them."""
        _, issuing = self.issuing()
        if issuing:
            for name in self.layouts:
                skc.hopper.tma_prefetch(self.maps[name])

    def load(self, tile, barrier, tmap, layout: OperandLayout, row0, k0, extent=None):
        """Every box of the tile at (row0, k0); with `extent` (the operand's rows), only the row shares that start
        before it, and the first always (a tile of a cluster may lie wholly past it: TMA fills its box with zeros)."""
        for share in skc.static_range(_row_shares(layout)):
            if extent is None or share == 0 or row0 + share * layout.share_rows < extent:
                for chunk in skc.static_range(layout.chunks):
                    self.load_share(tile, barrier, tmap, layout, row0, k0, chunk, share)

    @staticmethod
    def load_share(tile, barrier, tmap, layout, row0, k0, chunk, share, **multicast):
        """One box: share `share` (a run-time value too) of chunk `chunk`'s rows (the whole chunk without shares)."""
        if _row_shares(layout) > 1:
            destination = tile.address + chunk * layout.chunk_bytes + share * layout.share_rows * layout.swizzle
            row0, k0 = layout.share_corner(row0, k0, share)
        else:
            destination = tile.address + chunk * layout.chunk_bytes
        coordinates = layout.box_coordinates(chunk, row0, k0)
        skc.hopper.tma_load(_pointer_to(destination), barrier, tmap, coordinates, **multicast)

    def load_shared(self, tile, barrier, tmap, layout: OperandLayout, row0, k0, rank):
        """This block's share of a tile the whole cluster uses: its chunks (or its share of every chunk's rows),
        multicast to every block."""
        everyone = (1 << self.cluster) - 1
        if _row_shares(layout) > 1:
            for chunk in skc.static_range(layout.chunks):
                self.load_share(tile, barrier, tmap, layout, row0, k0, chunk, self.rank if rank is None else rank,
                                multicast_mask=everyone)
        else:
            per_block = layout.chunks // self.cluster
            for chunk in skc.static_range(layout.chunks):
                if (self.rank if rank is None else rank) == chunk // per_block:
                    self.load_share(tile, barrier, tmap, layout, row0, k0, chunk, 0, multicast_mask=everyone)


def _unit_free(box) -> tuple:
    """A box's extents less its unit ones (a 3-D map's box of one matrix, (1, rows, columns), is a 2-D tile's)."""
    return tuple(extent for extent in box if extent != 1)


def _largest_divisor(count: int, limit: int) -> int:
    """The largest divisor of count that is at most limit (1 at least)."""
    return max(d for d in range(1, max(1, limit) + 1) if count % d == 0)


def _row_shares(layout) -> int:
    """How many boxes load each chunk's rows (a cluster's blocks one each): row_shares is optional in a layout's
    interface, one box a chunk without it."""
    return getattr(layout, "row_shares", 1)


def _pointer_to(address):
    return skc.int_to_ptr(address, skc.u8, "shared")


def _check_stored_matrix(name: str, operand):
    """A VectorLoader operand: (pointer, rows, cols) of the row-major matrix it is copied from."""
    hint = f"{name}=(pointer, rows, cols): a pointer parameter (skc.Ptr[...]) to the row-major stored matrix and its " \
           "rows and columns"
    if not (isinstance(operand, tuple) and len(operand) == 3):
        refuse("VectorLoader", f"operand {name}", "a tuple (pointer, rows, cols)", operand, hint)
    pointer, rows, cols = operand
    if not (isinstance(pointer, frontend.Array) or isinstance(pointer, frontend.Dyn)
            and isinstance(pointer.type, frontend.PtrType)):
        refuse("VectorLoader", f"pointer of operand {name}", "a pointer (skc.Ptr[...])", pointer,
               hint + ("; a tensor map is for TmaLoader" if isinstance(pointer, frontend.Dyn) else ""))
    for what, value in (("rows", rows), ("cols", cols)):
        if not is_integer(value):
            refuse("VectorLoader", f"{what} of operand {name}", "an integer", value, hint)


class VectorLoader:
    """TileIO without TMA: the producer warpgroup's first `threads` threads (by default all of them: those
    `is_issuing()` names) copy the operand tiles, their loads shared out evenly, with vector loads of `width`
    elements (8: 16 bytes), masked at the matrix edges, into the same swizzled layout the TMA would write, then each
    arrives once on the stage's barrier. `operands` name (pointer, rows, cols) of each operand's row-major stored
    matrix: M x K for a K-major A, K x M for an MN-major one; K x N for an MN-major B, N x K for a K-major one. A
    load is masked whole, so `width` must divide each stored matrix's cols (and its address, in elements): narrower
    loads read rows of any length, which TMA cannot address. `asynchronous`: each vector goes by cp.async (4, 8 or
    16 bytes: `width` of 2-byte elements from 2), which holds no register, so a stage's copies are all in flight at
    once; each thread's arrival waits for its copies.
    """

    def __init__(self, threads: int = None, width: int = 8, in_flight: int = 8, asynchronous: bool = False,
                 **operands):
        group = skc.current_target().warpgroup_size
        self.threads = threads or group
        if not 1 <= self.threads <= group:
            raise frontend.current().error(
                f"VectorLoader copies with threads of the producer warpgroup: 1 to {group}, not {self.threads}",
                hint="give threads= at most the warpgroup's size (or leave it out: the whole warpgroup)")
        if not (isinstance(width, int) and not isinstance(width, bool) and width in (1, 2, 4, 8, 16)):
            raise frontend.current().error(
                f"VectorLoader loads vectors of 1, 2, 4, 8 or 16 elements (at most 16 bytes), not {width!r}",
                hint="width=8 for 2-byte elements (16 bytes), or fewer for rows of other lengths")
        self.width = width
        self.in_flight = in_flight   # 4-byte registers of loaded data a thread keeps in flight
        self.asynchronous = asynchronous
        self.operands = operands
        self.arrivals = self.threads  # every copying thread arrives once a stage
        if type(self) is VectorLoader and compiling():   # (a subclass's element() may address its operands otherwise)
            for name, operand in operands.items():
                _check_stored_matrix(name, operand)
                elem = getattr(getattr(operand[0], "type", None), "elem", None)
                if elem is not None and width * elem.bits > 128:   # (refused at the load before, "split it")
                    raise frontend.current().error(
                        f"VectorLoader's width={width} of operand {name}'s {elem} is {width * elem.bits // 8} bytes; "
                        "a vector moves at most 16", hint=f"width={128 // elem.bits} for {elem}")

    def is_issuing(self):
        """Whether this thread copies: the producer's first `threads` (all of its warpgroup by default), each
        arriving once a stage (`arrivals`); the others rest."""
        group = skc.current_target().warpgroup_size
        return True if self.threads == group else skc.thread_index() % group < self.threads

    def __call__(self, stage, k, **origins):
        """Copy each operand's tile from its origin (a=..., b=...) at k-step k into the stage: the copying threads
        (is_issuing()) copy and arrive, whether or not the caller rested the others."""
        check_stage(type(self).__name__, stage)
        check_origins(type(self).__name__, origins)
        origins = _origins("VectorLoader", self.operands, origins)
        for name in self.operands:
            check_spacing(type(self).__name__, name, getattr(getattr(stage, name, None), "layout", None), origins[name])
        _check_producer_role(self)
        _check_arrivals(self, stage)
        if self.is_issuing():   # (the whole warpgroup: known at compile time)
            self.copy(stage, k, origins)

    def copy(self, stage, k, origins: dict):
        """This thread's share of the stage's copies, then its arrival."""
        t = skc.thread_index() % self.threads
        for name in self.operands:
            tile = getattr(stage, name)
            layout = tile.layout
            if getattr(layout, "swizzle", 128) != 128:
                raise frontend.current().error(
                    f"the vector loader writes the 128-byte swizzle; tile '{name}' is {layout.swizzle}-byte swizzled",
                    hint="load it with TmaLoader, or lay it out in 128-byte chunks")
            origin, k0 = origins[name], k * layout.k
            matrix, origin = self.matrix_of(name, layout, origin)
            # the stored matrix's rows and columns that this tile covers (K-major: rows are M or N)
            rows, cols = (layout.rows, layout.k) if layout.k_major else (layout.k, layout.rows)
            first_row, first_col = (origin, k0) if layout.k_major else (k0, origin)
            per_row = cols // self.width
            if rows * per_row % self.threads:   # (the loads are shared out evenly: a remainder would go uncopied)
                raise frontend.current().error(
                    f"VectorLoader's {self.threads} threads copy {self.width} elements a load, evenly: tile '{name}' "
                    f"({layout.rows} x {layout.k}) takes {rows * per_row} loads, no multiple of {self.threads}",
                    hint=f"make the tile's elements a multiple of {self.threads * self.width}, or copy with fewer "
                         f"threads (threads= dividing {rows * per_row})")
            count = rows * per_row // self.threads   # loads a thread makes
            if self.asynchronous:
                self.copy_async(name, tile, layout, t, first_row, first_col, per_row, count, matrix)
            else:
                self.copy_through_registers(name, tile, layout, t, first_row, first_col, per_row, count, matrix)
        if self.asynchronous:   # (once this thread's copies have landed)
            skc.hopper.cp_async_arrive(stage.full)
        else:
            skc.hopper.fence_proxy_async()  # generic-proxy writes, read next by wgmma (async proxy)
            skc.hopper.mbarrier_arrive(stage.full)

    def copy_through_registers(self, name: str, tile, layout, t, first_row, first_col, per_row: int, count: int,
                               matrix=0):
        """This thread's `count` loads of tile `name` and their stores to the stage: a run-time loop over groups of
        loads, as many in a group as `in_flight` registers hold (unrolled whole, ptxas would keep every load in flight
        at once and spill the producer's registers)."""
        registers = -(-self.width * layout.elem_bytes // 4)   # a load's
        group = _largest_divisor(count, self.in_flight // registers)
        # (a group's loads all issue before its first store: a masked load is a branch around it, and a store right
        # after each would wait for every load in turn)
        for g in range(count // group):
            loaded = []
            for j in skc.static_range(group):
                r, c = self.position(t + (g * group + j) * self.threads, per_row)
                source, inside = self.source(name, first_row + r, first_col + c, matrix)
                loaded.append(skc.load(source, width=self.width, mask=inside, other=0.0))
            for j in skc.static_range(group):   # (the positions again: no registers held across the loads)
                r, c = self.position(t + (g * group + j) * self.threads, per_row)
                skc.store(skc.int_to_ptr(tile.address + self.placed(layout, r, c), source.dtype, "shared"), loaded[j])

    def copy_async(self, name: str, tile, layout, t, first_row, first_col, per_row: int, count: int, matrix=0):
        """This thread's `count` copies of tile `name` by cp.async, a run-time loop over groups of four (eight left
        ptxas spilling beside two consumers); masked copies fill their vector with zeros."""
        nbytes = self.width * layout.elem_bytes
        if nbytes not in CP_ASYNC_BYTES:
            raise frontend.current().error(
                f"cp.async copies 4, 8 or 16 bytes; a vector of {self.width} of tile '{name}'s elements is {nbytes}",
                hint="copy wider vectors (vector_width), or through registers (asynchronous=False)")
        group = _largest_divisor(count, 4)
        for g in range(count // group):
            for j in skc.static_range(group):
                r, c = self.position(t + (g * group + j) * self.threads, per_row)
                source, inside = self.source(name, first_row + r, first_col + c, matrix)
                skc.hopper.cp_async(skc.int_to_ptr(tile.address + self.placed(layout, r, c), skc.u8, "shared"),
                                    source, nbytes, mask=inside)

    @frontend.host
    def matrix_of(self, name: str, layout, origin) -> tuple:
        """(matrix, first row) of an origin: a batch's tile (a layout of 3-D boxes, BatchedOperandLayout) has origin
        (matrix, row0), another tile row0 alone (matrix 0)."""
        batched = len(layout.box()) == 3
        if batched != isinstance(origin, tuple):
            raise frontend.current().error(
                f"VectorLoader's tile '{name}' is laid out as {type(layout).__name__}, whose origin is "
                + ("(matrix, row0)" if batched else "row0") + f"; found {origin!r}",
                hint=f"give {name}=(tile.batch, row0) for a tile of a batch's matrix, {name}=row0 for one matrix")
        return origin if batched else (0, origin)

    def source(self, name: str, row, col, matrix=0):
        """Where stored element (row, col) of matrix `matrix` of operand `name` is (a batch's matrices one after the
        other, each rows x cols as the operand says), and whether it lies inside its matrix."""
        source, inside = self.element(name, row, col)
        if isinstance(matrix, int) and matrix == 0:
            return source, inside
        _, rows_total, cols_total = self.operands[name]
        return source + skc.i64(matrix) * rows_total * cols_total, inside

    def element(self, name: str, row, col):
        """Where stored element (row, col) of operand `name` is, and whether it lies inside the matrix (a loader over
        another layout, conv2d's im2col, says so here)."""
        pointer, rows_total, cols_total = self.operands[name]
        return pointer + (skc.i64(row) * cols_total + col), (row < rows_total) & (col < cols_total)

    def position(self, e, per_row: int):
        """(row, column) in the stored matrix's part of the tile of the e-th load (per_row loads a row)."""
        return e // per_row, (e % per_row) * self.width

    @staticmethod
    def placed(layout, r: int, c: int):
        """Where the TMA puts stored element (r, c) of the tile: 128-byte rows per chunk of columns,
        the 16-byte piece index XOR (row % 8) (the 128-byte swizzle), and the element's bytes within its piece."""
        chunk, byte = c // layout.chunk, c % layout.chunk * layout.elem_bytes
        return chunk * layout.chunk_bytes + r * 128 + ((byte // 16) ^ (r % 8)) * 16 + byte % 16
