"""The runtime: devices and drivers (CUDA, HIP), device arrays, argument interop, launchers,
the on-disk compile cache, and the CPU interpreter of the tile IR."""
