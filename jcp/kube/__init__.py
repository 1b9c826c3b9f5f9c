"""The slice of the Kubernetes API jcp uses: its own Node (labels, the warm signal, the startup
taint), the nodes' warm states for `jcp fleet`, and label/taint key syntax. Every failure is a
KubeError whose text never holds the token."""
