"""The regression gate, ``archbench compare``: rules, the Mann–Whitney U test, matching, judging and
rendering. torch-free.

    cmp = archbench.gate.judge.compare("results/ci/base", "results/ci/head")
    print(archbench.gate.render.render(cmp, "markdown")); sys.exit(cmp.exit_code)
"""
