"""Execute: one group of points in-process (``group``), scheduling over executors (``schedule``,
``executors/``), the timeout watchdog, resuming, and the run session that ties them together.

    outcome = archbench.run("suites/quick.yaml")     # session.run
"""
