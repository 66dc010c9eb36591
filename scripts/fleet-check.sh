#!/bin/sh
# The check a fleet repository runs on each pull request (action.yml runs it; it runs as
# well on any CI): the committed output is current, then the review of what the change
# does to every rendered artifact, posted as one pull-request comment when PR is set.
# Environment: SPECS (default specs), OUTPUT (default output), BASE (the base branch or
# ref; default main), PR (a pull request number: post the review with gh), AUDITC (the
# auditc to run; default auditc on PATH).
# Exit: 0 all good, 1 the output is stale, 2 an error (a spec that no longer compiles
# among them: the review is still posted, naming it).
set -u
specs=${SPECS:-specs}
output=${OUTPUT:-output}
base=${BASE:-main}
auditc=${AUDITC:-auditc}
status=0

"$auditc" render "$specs" -o "$output" --check || status=$?
if [ "$status" -gt 1 ]; then
  exit "$status"
fi

case $base in
  origin/* | refs/* | [0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]*) ref=$base ;;
  *) ref=origin/$base ;;
esac
review=0
"$auditc" diff "$specs" --base "$ref" --format markdown >review.md || review=$?
if [ -n "${PR:-}" ] && [ -s review.md ]; then
  gh pr comment "$PR" --body-file review.md --edit-last 2>/dev/null ||
    gh pr comment "$PR" --body-file review.md || exit 2
fi
# 0: no differences, 1: differences (both fine: they are the review); 2: an error
if [ "$review" -gt 1 ]; then
  exit "$review"
fi
exit "$status"
