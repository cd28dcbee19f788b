"""Load → plan: the suite file, its schema, and its expansion into points.

    suite = archbench.load_suite("suites/quick.yaml")     # suite.load: YAML, schema, names checked
    points = archbench.expand(suite)                      # suite.plan: frozen Points with stable ids

``schema``, ``yaml``, ``messages`` and ``point`` are torch-free (the results, the gate and the report
read them); ``plan`` and ``load`` ask the registry, which builds models.
"""

MAX_POINTS = 10_000  # more points than this in one suite needs --yes (max_points=None)
