"""What jcp does to its node beyond pulling: the warm signal, the purge ledger and plan.

Kept import-free on purpose: `ledger` and `purge_plan` are pure enough for the engine to use,
while `warm` and `kube` speak to the Kubernetes API and belong to the composition root only.
"""
