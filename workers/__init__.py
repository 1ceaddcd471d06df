"""Background work: task functions (load through the store, call ``mixing``, write back) and dispatch."""
