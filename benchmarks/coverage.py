"""Coverage of greenbench's intervals and the gate's operating characteristic, by simulation
(prints figures, asserts nothing).

Simulated interleaved blocks are fed through greenbench's own functions
(``measure.compare.paired_ratio`` for the paired Δ and its CI, ``gate.decide`` for the gate), so
what is checked is the code that ships, not a re-implementation. The model of a measurement:

- R rounds (fresh processes), B cycles each; in a cycle the baseline and the variant each run
  one block, next to each other in time;
- the host's speed drifts from block to block (shared by both blocks of a pair, so it cancels
  in their ratio, as the Williams order makes it do on average);
- within a pair the log ratio has heavy-tailed noise (Student t with 3 df, scale ``--noise``);
- **between processes**, the variant's speed relative to the baseline moves by a normal effect
  with SD τ (``--effects``, %): memory layout, core placement and frequency differ per
  process. This is what made the former bootstrap intervals too narrow;
- the true ratio is exp(mean log ratio over processes): 1.00 (A/A) or 1.05.

Printed: per τ and true ratio, the share of 95 % intervals that cover the true ratio and, for
the A/A rows, the share flagged significant (CI excludes 1). Then the gate's outcomes at its
default threshold (5 %) for true changes of 0, +3, +5, +7, +10, +20 %, with rounds added while
inconclusive as the CLI does (``--rounds`` first, +2 at a time up to ``--max-rounds``).

    python benchmarks/coverage.py [--sims 2000] [--rounds 5] [--blocks 8] [--effects 0,1,2,3.5]
                                  [--gate-rounds 5] [--gate-blocks 10] [--max-rounds 12]
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np

from greenbench.gate.decision import GateConfig, decide, rules
from greenbench.gate.session import EXTRA_ROUNDS, GateSettings
from greenbench.measure.compare import paired_ratio
from greenbench.measure.protocol import Block
from greenbench.suite import ProtocolSettings

REFERENCE_MS = 10.0  # a model well above the gate's floor


def simulate_round(
    rng: np.random.Generator, true_ratio: float, tau: float, noise: float, blocks: int
) -> list[tuple[float, float]]:
    """(variant, baseline) latency pairs of one simulated process."""
    process = rng.normal(0.0, tau)
    drift = np.cumsum(rng.normal(0.0, 0.02, blocks))  # the host's speed, shared by a pair
    base = REFERENCE_MS * np.exp(drift + rng.normal(0.0, noise, blocks))
    log_ratio = np.log(true_ratio) + process + noise * rng.standard_t(3, blocks)
    return list(zip((base * np.exp(log_ratio)).tolist(), base.tolist(), strict=True))


def as_blocks(rounds: list[list[tuple[float, float]]], first_round: int = 0) -> list[Block]:
    """The pairs as the protocol's blocks (arms ``reference`` and ``candidate``)."""
    out = []
    for r, pairs in enumerate(rounds, start=first_round):
        for cycle, (cand, ref) in enumerate(pairs):
            for position, (arm, ms) in enumerate((("reference", ref), ("candidate", cand))):
                out.append(Block(arm, r, cycle, position, 0.0, 0.1, 1, 1, (ms,), ms, None, None, None))
    return out


def coverage(args: argparse.Namespace, rng: np.random.Generator) -> None:
    print(
        f"Paired Δ intervals (paired_ratio, 95 %), {args.rounds} rounds × {args.blocks} pairs, "
        f"pair noise {args.noise * 100:g} % (t3), {args.sims} simulations per row"
    )
    print(f"{'τ between processes':>20} {'true ratio':>10} {'coverage':>9} {'A/A significant':>16}")
    for tau in args.effects:
        for true in (1.00, 1.05):
            covered = significant = 0
            for _ in range(args.sims):
                found = [
                    simulate_round(rng, true, tau / 100, args.noise, args.blocks) for _ in range(args.rounds)
                ]
                pr = paired_ratio(found)
                assert pr.ci_low is not None and pr.ci_high is not None
                covered += pr.ci_low <= true <= pr.ci_high
                significant += bool(pr.significant)
            sig = f"{significant / args.sims:16.3f}" if true == 1.0 else f"{'':>16}"
            print(f"{tau:19.1f}% {true:10.2f} {covered / args.sims:9.3f} {sig}")


def gate_oc(args: argparse.Namespace, rng: np.random.Generator) -> None:
    latency_only = rules(["energy:off"])
    print()
    print(
        f"Gate outcomes (decide, default threshold 5 %, floor 0.05 ms on a {REFERENCE_MS:g} ms model), "
        f"{args.gate_rounds} rounds first, up to {args.max_rounds}, {args.gate_blocks} pairs each, "
        f"τ = {args.gate_effect:g} %, {args.gate_sims} gates per row"
    )
    print(f"{'true change':>12} {'regressed':>10} {'pass':>6} {'inconclusive':>13} {'mean rounds':>12}")
    for change in (0, 3, 5, 7, 10, 20):
        outcomes: Counter[str] = Counter()
        used = []
        for _ in range(args.gate_sims):
            sim = [
                simulate_round(rng, 1 + change / 100, args.gate_effect / 100, args.noise, args.gate_blocks)
                for _ in range(args.max_rounds)
            ]
            n = args.gate_rounds
            verdict = decide(as_blocks(sim[:n]), "reference", ["candidate"], latency_only, GateConfig())
            while verdict.outcome == "inconclusive" and n < args.max_rounds:
                n = min(n + EXTRA_ROUNDS, args.max_rounds)
                verdict = decide(as_blocks(sim[:n]), "reference", ["candidate"], latency_only, GateConfig())
            outcomes[verdict.outcome] += 1
            used.append(n)
        k = args.gate_sims
        print(
            f"{change:+11d}% {outcomes['regressed'] / k:10.2f} {outcomes['pass'] / k:6.2f} "
            f"{outcomes['inconclusive'] / k:13.2f} {np.mean(used):12.1f}"
        )


def main() -> None:
    gate_defaults = GateSettings()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sims", type=int, default=2000, help="simulations per coverage row")
    p.add_argument("--gate-sims", type=int, default=400, help="simulated gates per change")
    p.add_argument("--rounds", type=int, default=ProtocolSettings().rounds, help="default: run's")
    p.add_argument("--blocks", type=int, default=ProtocolSettings().blocks, help="default: run's")
    p.add_argument("--max-rounds", type=int, default=gate_defaults.max_rounds, help="the gate's")
    p.add_argument("--gate-rounds", type=int, default=gate_defaults.rounds, help="the gate's first rounds")
    p.add_argument(
        "--gate-blocks", type=int, default=gate_defaults.blocks, help="the gate's blocks per round"
    )
    p.add_argument("--noise", type=float, default=0.03, help="pair log-ratio noise scale (0.03 = 3 %%)")
    p.add_argument("--effects", type=lambda s: [float(x) for x in s.split(",")], default=[0, 1, 2, 3.5])
    p.add_argument("--gate-effect", type=float, default=3.5, help="τ of the gate's rows, %%")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    coverage(args, rng)
    gate_oc(args, rng)


if __name__ == "__main__":
    main()
