"""Generated stubs (scripts/gen-containerd-api.sh) of containerd's native Images API, vendored
from containerd v1.7.24: what `jcp.runtime.pins` labels image records through."""
