#!/usr/bin/env bash
# The scheduled experiments workflow's step, for one environment: for every experiment it runs, the report on the
# environment's Prometheus, and what its verdict asks for, as a pull request:
# - promote: a branch experiments/<env>/<experiment> from main with the next weight step and the recorded verdict
#   (which the policy pack reads to allow the step), and a pull request opened or updated with the report;
# - roll back: the same with the rollback, labelled `rollback`, and an alert raised at once in the environment's
#   Alertmanager (ExperimentGuardrailBreached), since a breach should not wait for a review to be noticed;
# - hold: nothing.
# Needs: ENVIRONMENT, PROMETHEUS_URL; ALERTMANAGER_URL for the alert; `gh` authenticated (GH_TOKEN); LLMPLANE
# (default .venv/bin/llmplane); BASE (default origin/main).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${ENVIRONMENT:?set ENVIRONMENT}" "${PROMETHEUS_URL:?set PROMETHEUS_URL}"
llmplane=${LLMPLANE:-.venv/bin/llmplane}
base=${BASE:-origin/main}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

git config user.name >/dev/null || git config user.name "llmplane experiments"
git config user.email >/dev/null || git config user.email "experiments@llmplane.invalid"

"$llmplane" experiment list "$ENVIRONMENT" | while read -r model experiment; do
  branch="experiments/$ENVIRONMENT/$experiment"
  git checkout -q -B "$branch" "$base"
  "$llmplane" experiment report "$ENVIRONMENT" "$model" --experiment "$experiment" --prometheus "$PROMETHEUS_URL" \
    --apply --summary "$out/$experiment.json" > "$out/$experiment.md"
  verdict=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["verdict"])' "$out/$experiment.json")
  changed=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["changed"])' "$out/$experiment.json")
  echo "experiments: $ENVIRONMENT $model $experiment: $verdict"
  if [ "$changed" != "True" ]; then
    continue
  fi
  git commit -q -am "Experiment $experiment on $ENVIRONMENT: $verdict"
  git push -q -f origin "$branch"
  title="Experiment $experiment ($ENVIRONMENT): $verdict"
  labels=(--label experiment)
  if [ "$verdict" = "roll back" ]; then
    labels+=(--label rollback)
    if [ -n "${ALERTMANAGER_URL:-}" ]; then
      python3 - "$ENVIRONMENT" "$model" "$experiment" > "$out/alert.json" <<'PY'
import json, sys
environment, model, experiment = sys.argv[1:4]
print(json.dumps([{"labels": {"alertname": "ExperimentGuardrailBreached", "severity": "page",
                              "environment": environment, "model": model, "experiment": experiment},
                   "annotations": {"summary": f"{experiment}: a guardrail is breached; the rollback pull request "
                                              f"is open on experiments/{environment}/{experiment}"}}]))
PY
      curl -fsS -X POST -H 'Content-Type: application/json' --data @"$out/alert.json" \
        "$ALERTMANAGER_URL/api/v2/alerts"
    fi
  fi
  if gh pr view "$branch" >/dev/null 2>&1; then
    gh pr edit "$branch" --title "$title" --body-file "$out/$experiment.md" "${labels[@]/--label/--add-label}"
  else
    gh pr create --head "$branch" --base "${base#origin/}" --title "$title" --body-file "$out/$experiment.md" \
      "${labels[@]}"
  fi
done
