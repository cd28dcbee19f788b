"""The measuring instruments: the timer and its stop rule, the passes timed, backend flags, the
matmul peak, the GPU monitor, the environment, and the training loop of the accuracy metric.

    m = archbench.measure(lambda: model(x), device="cpu")
"""
