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
# 2: a spec does not compile (or bad input): the review below still names it

case $base in
  origin/* | refs/* | [0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]*) ref=$base ;;
  *) ref=origin/$base ;;
esac
body=$(mktemp "${TMPDIR:-/tmp}/auditc-review.XXXXXX") || exit 2
trap 'rm -f "$body"' EXIT
review=0
"$auditc" diff "$specs" --base "$ref" --format markdown >"$body" || review=$?
if [ -n "${PR:-}" ] && [ -s "$body" ]; then
  gh pr comment "$PR" --body-file "$body" --edit-last 2>/dev/null ||
    gh pr comment "$PR" --body-file "$body" || exit 2
fi
# the render's error first, then the review's; its 1 (differences) is the review, not a failure
if [ "$status" -gt 1 ]; then
  exit "$status"
fi
if [ "$review" -gt 1 ]; then
  exit "$review"
fi
exit "$status"
