"""Importable test-only plugins: a worker process (archbench.executors) finds them through sys.path."""
