"""Tables of proxy runs: the column conventions of the CSVs users bring, the RegMix tables, and the replay
harness that drives a live service over HTTP with a table's measured results.

Neither service nor worker: the CLI (``mixopt import``, ``laws``, ``demo``, ``replay``), the benchmarks and
the tests use it, and it talks to the service only as a client does (:mod:`mixopt_client`).
"""
