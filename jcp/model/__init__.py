"""The domain: images, configs, credentials as data, pull results and failure classes.

Pure: no I/O and no runtime's vocabulary (import-linter keeps it so).
"""
