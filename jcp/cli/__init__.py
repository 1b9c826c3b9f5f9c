"""Entry points: the command line, its options, `jcp validate`, `jcp fleet`, and logging.

The top layer: it may import everything below it, and nothing imports it."""
