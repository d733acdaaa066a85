"""Writes a task registry that holds one quick goal task, FetchReach, for the learning-parity
benchmark of hindsight relabelling (benchmarks/learning_parity.py).

FetchPickAndPlace, the paper's goal task, needs millions of steps before a policy succeeds, so
it cannot show within minutes whether the two engines' relabelling learns alike. FetchReach
(move the gripper to a goal; the same robot, observation layout and reward) does within tens of
thousands. Its entry is FetchPickAndPlace's, settings and all (HER 'future' k = 4, SAC gamma
0.95, lr 1e-3, batch 256, done on success), with only the env id changed; the defaults are the
packaged registry's, read at run time, so nothing is copied here.

    .venv/bin/python benchmarks/goal_task_registry.py --out results/parity_fetch_reach/registry.yaml
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from asymbench.tasks import REGISTRY_PATH, parse_registry

PAPER_ONLY = ("paper_name", "paper_obs_dim", "paper_fit_width")  # FetchPickAndPlace's, not Reach's


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    raw = yaml.safe_load(Path(REGISTRY_PATH).read_text())
    entry = {k: v for k, v in raw["tasks"]["FetchPickAndPlace"].items() if k not in PAPER_ONLY}
    raw["tasks"] = {"FetchReach": {**entry, "env_id": "FetchReach-v4"}}
    parse_registry(raw, source=args.out)  # validates it (and that the env builds) before writing
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(yaml.safe_dump(raw, sort_keys=False))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
