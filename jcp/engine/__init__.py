"""The engine: which images a node wants (plan, sizing), the queue and the pullers (intake,
desk, worker, job), the one retry policy and registry gate, and the read model every observer
reads. It speaks to ports only: the runtime protocol, the remote protocol, the fleet slot."""
