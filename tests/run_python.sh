#!/usr/bin/env bash
# A test's Python, with an interpreter that has the modules it needs, or the test is skipped (exit 77,
# ctest's SKIP_RETURN_CODE) with a line saying what is missing where. Picked when the test runs, not
# when it is configured: PyTorch may live in another python3 than Debian's (a GPU machine's venv).
#   run_python.sh CONFIGURED_PYTHON "MODULES" SCRIPT.py [ARGS...]   runs SCRIPT.py with the interpreter
#   run_python.sh CONFIGURED_PYTHON "MODULES" COMMAND [ARGS...]     runs COMMAND with XP_PYTHON set to it
# Candidates: $XP_PYTHON alone when it is set; else CONFIGURED_PYTHON (Debian's, found by CMake), then
# python3 on PATH — the first that imports every one of MODULES (space-separated; "" = any python3).
set -u
if [[ $# -lt 3 ]]; then
  echo "usage: $0 CONFIGURED_PYTHON \"MODULES\" SCRIPT.py|COMMAND [ARGS...]" >&2
  exit 2
fi
configured=$1 modules=$2
shift 2

if [[ -n ${XP_PYTHON:-} ]]; then
  candidates=("$XP_PYTHON")
else
  candidates=("$configured")
  on_path=$(command -v python3 || true)
  [[ -n $on_path && $on_path != "$configured" ]] && candidates+=("$on_path")
fi

# The modules `$1` cannot import, space-separated ("" when it has them all).
missing_modules() {
  # shellcheck disable=SC2086
  "$1" - $modules <<'PY' 2>/dev/null
import importlib, sys
missing = []
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception:
        missing.append(name)
print(" ".join(missing))
PY
}

python="" tried=""
for candidate in "${candidates[@]}"; do
  if [[ ! -x $candidate ]] && ! command -v "$candidate" >/dev/null; then
    tried+="${tried:+, }$candidate (absent)"
    continue
  fi
  if ! missing=$(missing_modules "$candidate"); then
    tried+="${tried:+, }$candidate (does not run)"
    continue
  fi
  if [[ -z $missing ]]; then
    python=$candidate
    break
  fi
  tried+="${tried:+, }$candidate (lacks $missing)"
done
if [[ -z $python ]]; then
  echo "skipped: no python3 with ${modules:-a working interpreter}: tried $tried; set XP_PYTHON to one that has them"
  exit 77
fi

export XP_PYTHON=$python
if [[ $1 == *.py ]]; then exec "$python" "$@"; fi
exec "$@"
