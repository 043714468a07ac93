"""Tuning state that lasts: MetaSchedule records keyed by workload and target, TensorRT timing caches
keyed by GPU and TensorRT version, and the search over (backend, precision, pruning) above them.

Backends that tune keep their tuner here, beside the database it writes, not in backends/.
"""
