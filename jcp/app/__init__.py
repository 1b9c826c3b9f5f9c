"""The composition root: the only layer that knows concrete classes (the Docker and CRI
adapters, the registry client, the Kubernetes client) and wires them into the engine, the HTTP
server and the node lifecycle; it owns the process lifecycle of `jcp run` and `jcp once`."""
