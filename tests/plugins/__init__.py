"""Importable test-only plugins: a worker process (archbench.execute.executors) finds them through sys.path."""
