"""This engine against an earlier revision's, on the same messages, in one process.

The machine's speed drifts more over a day than a code change moves it, so two runs of
`engine_bench.py` at different times cannot tell whether a change made screening faster. This
checks the earlier revision out into a temporary git worktree, imports its `bot` package under
another name, and times both engines in alternating passes over the same 10,000-message mix
(each with its own shipped rules, or with `--same-rules` both with this tree's, which compares the
code alone), printing the best pass of each and the ratio.

    python bench/engine_compare.py [--against REV] [--same-rules] [--passes 7] [--messages 10000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine_bench import corpus_mix  # noqa: E402 - bench/ is the script's folder

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--against", default="HEAD~1", help="git revision to compare with (default HEAD~1)")
    ap.add_argument("--passes", type=int, default=7)
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--same-rules", action="store_true",
                    help="give the earlier engine this tree's rules (compares the code alone)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(tree), args.against],
                       check=True)
        try:
            alias = Path(tmp) / "alias"
            alias.mkdir()
            (alias / "pharmamod_baseline").symlink_to(tree / "bot")
            sys.path.insert(0, str(alias))
            import bot.engine
            import bot.models
            import bot.ruleset
            import pharmamod_baseline.engine as old_engine
            import pharmamod_baseline.models as old_models
            import pharmamod_baseline.ruleset as old_ruleset

            if not args.same_rules:  # its own shipped rules: the `rules` package on the path is this tree's
                old_ruleset.shipped_rules_dir = lambda: tree / "rules"
            texts = corpus_mix(args.messages)
            engines = {
                args.against: (old_engine.screen, old_ruleset.load_ruleset(),
                               [old_models.Message(text=t) for t in texts]),
                "this tree": (bot.engine.screen, bot.ruleset.load_ruleset(), [bot.models.Message(text=t) for t in texts]),
            }
            best = {name: float("inf") for name in engines}
            for i in range(args.passes + 1):  # the first pass warms caches and is not counted
                for name, (screen, rs, messages) in engines.items():
                    t0 = time.perf_counter()
                    for m in messages:
                        screen(m, rs)
                    if i:
                        best[name] = min(best[name], time.perf_counter() - t0)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    rates = {name: len(texts) / t for name, t in best.items()}
    rules = "this tree's rules for both" if args.same_rules else "each with its own rules"
    print(f"same {len(texts):,} messages, {rules}, best of {args.passes} alternating passes each, one process:")
    for name, rate in rates.items():
        print(f"  {name:>12}  {rate:>9,.0f} messages/s")
    print(f"  ratio         {rates['this tree'] / rates[args.against]:.3f}x (this tree / {args.against})")


if __name__ == "__main__":
    main()
