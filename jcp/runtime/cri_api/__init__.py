"""Generated CRI v1 stubs (scripts/gen-cri.sh) from the vendored k8s.io/cri-api api.proto."""
