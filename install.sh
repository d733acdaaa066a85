#!/usr/bin/env bash
# Creates .venv/ in the repository root and installs asymbench with the pinned dependency set.
# Usage: bash install.sh        (idempotent: rerunning it only installs what is missing)
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
"$PYTHON" - <<'PY' || { echo "asymbench needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)
PY
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip"
$PIP install --quiet --upgrade "pip==26.3"
# constraints.txt pins every transitive dependency to the set CI runs with.
$PIP install --quiet -c constraints.txt -e '.[test]'
# imitation 1.0.1 pins gymnasium~=0.29 and stable-baselines3~=2.2.1, which cannot coexist with
# gymnasium-robotics 1.4 (the Fetch tasks). Its code runs on the newer set (BC and GAIL are
# exercised by the tests), so it is installed without its pins; its runtime needs are in
# pyproject.toml. `pip check` reports these two pins: that is expected.
$PIP install --quiet --no-deps -c constraints.txt imitation==1.0.1 seals==0.2.1 huggingface-sb3==3.0
echo "asymbench installed in .venv/ ($(.venv/bin/python -c 'import asymbench, torch; print("torch", torch.__version__)'))"
