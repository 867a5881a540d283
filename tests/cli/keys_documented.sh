#!/usr/bin/env bash
# Every deck key xp_train knows (its --help table) has a row in inputs/README.md's key tables, in the
# table (section) --help puts it in, and no row there names a key xp_train does not know.
# usage: keys_documented.sh XP_TRAIN INPUTS_README
set -euo pipefail
xp_train=$1 readme=$2
help=$("$xp_train" --help)
# --help: "[section]" lines, then "  key  type  default ...".
known=$(awk '/^\[[a-z]+\]$/ {section = substr($0, 2, length($0) - 2); next}
             section != "" && /^  [a-z_0-9]+ / {print section "." $1}' <<<"$help" | sort -u)
# README: "## [section]" headings, then "| `key` | ..." rows.
documented=$(awk '/^## \[[a-z]+\]/ {section = $2; gsub(/[\[\]]/, "", section); next}
                  /^## / {section = ""}
                  section != "" && /^\| `[a-z_0-9]+`/ {
                    # the first cell may name several keys: | `beta1`, `beta2` |
                    split($0, cells, "|"); n = split(cells[2], names, "`")
                    for (i = 2; i <= n; i += 2) print section "." names[i]}' "$readme" | sort -u)
[[ $(wc -l <<<"$known") -ge 30 ]] || { echo "FAIL: --help listed only $(wc -l <<<"$known") keys"; exit 1; }
missing=$(comm -23 <(echo "$known") <(echo "$documented"))
unknown=$(comm -13 <(echo "$known") <(echo "$documented"))
[[ -z $missing ]] || { echo "FAIL: keys without a row in $readme (section.key):"; echo "$missing"; }
[[ -z $unknown ]] || { echo "FAIL: rows in $readme for keys xp_train does not have (section.key):"; echo "$unknown"; }
[[ -z $missing && -z $unknown ]] || exit 1
echo "PASS: all $(wc -l <<<"$known") keys documented in their section"
