"""jcp's own blob fetch: image blobs fetched into containerd's content store with ranged
requests, then the runtime's PullImage only unpacks (it skips every blob the store holds).

A concrete adapter over both the registry client and the runtime: the composition root wraps
the CRI runtime in `FetchingRuntime`, and the engine sees an `ImageRuntime` like any other.
"""
