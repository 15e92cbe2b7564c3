"""Optimizer updates: fastcnn vs NumPy on the seed model's 122,570 parameters (10 tensors),
and the optimizer step fit runs on the tutorial model's variables.

    pytest benchmarks/bench_optim.py --benchmark-only --benchmark-group-by=param:case
    python benchmarks/bench_optim.py [--threads 2] [--repeats 31]   # interleaved medians + ratios

"fastcnn many" updates all 10 tensors in one call (adam_update_many & co.), "fastcnn loop"
calls the single-tensor op per tensor, "numpy" is the same Keras 3 formula written with
in-place NumPy operations per tensor (what a pure-NumPy framework would do).

The second table times ``optimizer.update(variables, grads)`` -- fit's whole optimizer step,
Python included -- over the tutorial model's trainable variables: plain Adam against
AdamW / Adam with ``clipnorm`` + ``weight_decay`` and other Keras base arguments, with the
ratio to plain Adam (goal: AdamW + clipnorm <= 1.2x). Cases an older fastcnn refuses print
"refused", so the same script measures the code before and after a change.
"""
import argparse
import math
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import fastcnn  # noqa: E402
from _bench import THREADS, interleaved_medians_us  # noqa: E402
from fastcnn import ops  # noqa: E402

SEED_SHAPES = [(3, 3, 3, 32), (32,), (3, 3, 32, 64), (64,), (3, 3, 64, 64), (64,), (1024, 64),
               (64,), (64, 10), (10,)]


def make_cases(seed=0):
    rng = np.random.default_rng(seed)
    ws = [rng.standard_normal(s).astype(np.float32) * 0.05 for s in SEED_SHAPES]
    gs = [rng.standard_normal(s).astype(np.float32) * 1e-3 for s in SEED_SHAPES]
    ms = [np.zeros(s, np.float32) for s in SEED_SHAPES]
    vs = [np.zeros(s, np.float32) for s in SEED_SHAPES]
    assert sum(w.size for w in ws) == 122570

    def np_adam(t=5, lr=1e-3, b1=0.9, b2=0.999, eps=1e-7):
        alpha = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        for w, g, m, v in zip(ws, gs, ms, vs):
            m += (g - m) * (1 - b1)
            v += (g * g - v) * (1 - b2)
            w -= (m * alpha) / (np.sqrt(v) + eps)

    def np_sgd(lr=0.01, momentum=0.9):
        for w, g, vel in zip(ws, gs, ms):
            vel *= momentum
            vel -= g * lr
            w += vel

    def np_rmsprop(lr=1e-3, rho=0.9, eps=1e-7):
        for w, g, vel in zip(ws, gs, vs):
            vel *= rho
            vel += (1 - rho) * (g * g)
            w -= (lr * g) / np.sqrt(vel + eps)

    return {
        "adam": {
            "fastcnn many": lambda: ops.adam_update_many(ws, gs, ms, vs, 5),
            "fastcnn loop": lambda: [ops.adam_update(w, g, m, v, 5)
                                     for w, g, m, v in zip(ws, gs, ms, vs)],
            "numpy": np_adam},
        "sgd momentum": {
            "fastcnn many": lambda: ops.sgd_update_many(ws, gs, ms, momentum=0.9),
            "fastcnn loop": lambda: [ops.sgd_update(w, g, m, momentum=0.9)
                                     for w, g, m in zip(ws, gs, ms)],
            "numpy": np_sgd},
        "rmsprop": {
            "fastcnn many": lambda: ops.rmsprop_update_many(ws, gs, vs),
            "fastcnn loop": lambda: [ops.rmsprop_update(w, g, v) for w, g, v in zip(ws, gs, vs)],
            "numpy": np_rmsprop},
    }


CASES = make_cases()


def optimizer_step_cases(seed=0):
    """{case: (callable running one optimizer step, note)} over the tutorial model's
    trainable variables, and the parameter count."""
    from fastcnn import optimizers, zoo
    model = zoo.tutorial_model()
    variables = list(model.trainable_weights)
    rng = np.random.default_rng(seed)
    grads = [(rng.standard_normal(v.shape) * 1e-3).astype(np.float32) for v in variables]
    makers = {
        "Adam": lambda: optimizers.Adam(),
        "AdamW": lambda: optimizers.AdamW(),
        "AdamW clipnorm": lambda: optimizers.AdamW(clipnorm=1.0),
        "Adam clipnorm+wd": lambda: optimizers.Adam(clipnorm=1.0, weight_decay=0.004),
        "Adam global_clipnorm": lambda: optimizers.Adam(global_clipnorm=1.0),
        "Adam ema": lambda: optimizers.Adam(use_ema=True),
        "Adam amsgrad": lambda: optimizers.Adam(amsgrad=True),
    }
    cases = {}
    for name, make in makers.items():
        try:
            opt = make()
        except (ValueError, TypeError):
            continue  # an older fastcnn: not supported there
        opt.build(variables)
        cases[name] = (lambda opt=opt: opt.update(variables, grads))
    return cases, sum(int(np.prod(v.shape)) for v in variables), list(makers)




@pytest.mark.parametrize("impl", ["fastcnn many", "fastcnn loop", "numpy"])
@pytest.mark.parametrize("case", list(CASES))
def test_optim(benchmark, case, impl):
    benchmark.group = case
    benchmark(CASES[case][impl])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=THREADS)
    ap.add_argument("--repeats", type=int, default=31)
    args = ap.parse_args()
    fastcnn.set_num_threads(args.threads)
    print("fastcnn threads=%d simd=%s repeats=%d (median per call, 122,570 params)"
          % (fastcnn.get_num_threads(), fastcnn.config()["simd"], args.repeats))
    print("%-14s %14s %14s %10s %12s" % ("case", "fastcnn many", "fastcnn loop", "numpy",
                                         "numpy/many"))
    for case, impls in CASES.items():
        med = interleaved_medians_us(impls, args.repeats)  # interleaved: noise hits all alike
        print("%-14s %12.1fus %12.1fus %8.1fus %11.1fx"
              % (case, med["fastcnn many"], med["fastcnn loop"], med["numpy"],
                 med["numpy"] / med["fastcnn many"]))
    steps, params, names = optimizer_step_cases()
    med = interleaved_medians_us(steps, args.repeats)
    print("\noptimizer.update over the tutorial model's variables (%d params), median per step"
          % params)
    print("%-22s %12s %10s" % ("optimizer", "per step", "vs Adam"))
    for name in names:
        if name not in med:
            print("%-22s %12s" % (name, "refused"))
        else:
            print("%-22s %10.1fus %9.2fx" % (name, med[name], med[name] / med["Adam"]))


if __name__ == "__main__":
    main()
