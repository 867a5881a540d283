#!/usr/bin/env bash
# A command that must fail cleanly: expect_error.sh EXPECTED_REGEX -- COMMAND...
# Passes when COMMAND exits non-zero within 120 s, its output matches EXPECTED_REGEX (grep -E), rank 0
# printed exactly one "xp_train: error:" line, and nothing crashed on the way out.
set -u
if [[ $# -lt 3 || $2 != "--" ]]; then
  echo "usage: $0 EXPECTED_REGEX -- COMMAND..." >&2
  exit 2
fi
expected=$1
shift 2

output=$(timeout 120 "$@" 2>&1)
status=$?
problems=()
if [[ $status -eq 0 ]]; then problems+=("the command succeeded"); fi
if [[ $status -eq 124 ]]; then problems+=("the command hung (killed after 120 s)"); fi
if ! grep -qE -- "$expected" <<<"$output"; then problems+=("the output does not match: $expected"); fi
errors=$(grep -c 'xp_train: error:' <<<"$output")
if [[ $errors -ne 1 ]]; then problems+=("'xp_train: error:' appears $errors times, not once"); fi
if grep -qE 'terminate called|Segmentation|[Bb]acktrace|core dumped|MPI_ABORT was invoked' <<<"$output"; then
  problems+=("the command crashed instead of reporting an input error")
fi

if [[ ${#problems[@]} -eq 0 ]]; then
  echo "ok (exit $status): $(grep 'xp_train: error:' <<<"$output")"
  exit 0
fi
echo "command: $*"
echo "exit status: $status"
echo "---- output ----"
echo "$output"
echo "----------------"
printf 'FAIL: %s\n' "${problems[@]}"
exit 1
