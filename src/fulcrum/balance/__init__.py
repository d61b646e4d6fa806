"""Pure scheduling: algorithms (one module each), stickiness and the pool runtime.

Nothing here does I/O or reads a clock: time comes in as an argument."""
