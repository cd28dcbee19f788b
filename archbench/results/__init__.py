"""Store → tables: the results folder written point by point (``store``), read back (``load``),
and the tables consolidated from it: power-law fits, Table 1, the accuracy table.

torch-free: a report, the gate and the exporters use it on a machine without torch.

    df = archbench.load_results("results/quick/<stamp>")
"""
