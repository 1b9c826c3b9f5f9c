"""A real Docker daemon and registries on loopback, for tests, benchmarks and trying jcp by hand."""
