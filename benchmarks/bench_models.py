"""How fast are whole-model estimates? Prints one estimate's time, a 10,000-point sweep rate and
a capacity plan's time per deployment, then llm-analysis and GenZ timed on one question in the
same run (benchmarks/_peers.py; each skipped, saying so, where it is not installed).

    python benchmarks/bench_models.py [--points 10000] [--no-plan]
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from simulator.model.llm import estimate_model, sweep
from simulator.capacity.plan import plan

from _peers import print_table as print_peers  # benchmarks/_peers.py: llm-analysis and GenZ, if installed
from _timing import best_of  # benchmarks/_timing.py (scripts run from this folder)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10000)
    parser.add_argument("--no-plan", action="store_true", help="skip the (slow) capacity-plan row")
    args = parser.parse_args()
    estimate_model("llama-2-70b", "h100")  # load specs and models once
    print(f"{'what':<58} {'seconds':>9} {'per point':>12}")
    # The op table is built when first read (ModelEstimate.ops): the rows price the estimate
    # alone, and the estimate with its table read.
    for label, one in (("one estimate, LLaMA-2-70B decode, op table read", lambda: estimate_model(
                            "llama-2-70b", "h100", "decode", 1, 4096).ops),
                       ("one estimate, op table not read", lambda: estimate_model(
                            "llama-2-70b", "h100", "decode", 1, 4096)),
                       ("one estimate, summary only (with_ops=False)", lambda: estimate_model(
                            "llama-2-70b", "h100", "decode", 1, 4096, with_ops=False))):
        t = best_of(lambda: [one() for _ in range(100)], 5)
        print(f"{label:<58} {t / 100:>9.5f} {t / 100 * 1e3:>9.3f} ms")
    rng = np.random.default_rng(0)
    n = args.points
    points = pd.DataFrame({
        "model": rng.choice(["llama-2-7b", "llama-2-70b", "llama-3.1-8b", "mixtral-8x7b", "opt-30b"], n),
        "hw": rng.choice(["a100", "h100", "h200", "b200"], n),
        "phase": rng.choice(["prefill", "decode"], n),
        "batch": rng.integers(1, 65, n),
        "context": rng.integers(128, 2049, n),
        "recipe": rng.choice(["dense", "2:4", "unstructured:0.6:bitmap", "owl:0.7", "depth:0.25"], n),
        "weights": rng.choice([None, "int4:g128"], n),
    })
    groups = points.groupby(["model", "hw", "recipe", "weights"], dropna=False).ngroups
    t = best_of(lambda: sweep(points), 3)
    print(f"{f'sweep of {n} (model, hw, phase, batch, context, recipe, weights) points':<58} {t:>9.3f} "
          f"{t / n * 1e6:>9.1f} us  ({groups} vectorized groups)")
    kw = dict(hws=("a100", "h100", "h200", "b200"), tps=(1, 2, 4, 8), recipes=("dense", "2:4", "owl:0.7"),
              weights=(None, "int8", "int4:g128"), kv_methods=(None, "h2o", "snapkv+kivi"), max_tpot_s=0.05)
    deployments = 4 * 4 * 3 * 3 * 3
    if not args.no_plan:
        t = best_of(lambda: plan("llama-2-70b", 32768, **kw), 3)
        print(f"{f'sparsim plan: {deployments} deployments of LLaMA-2-70B, TPOT target':<58} {t:>9.3f} "
              f"{t / deployments * 1e3:>9.2f} ms")
    print_peers()


if __name__ == "__main__":
    main()
