#!/usr/bin/env bash
# Validates the deployment files without running them: the compose cluster
# (docker/), the Kubernetes manifests (deploy/kubernetes) and the Grafana
# dashboard. Needs no container engine and no cluster: yamllint,
# docker-compose (1.x validates on its own), promtool and Debian's python3
# with python3-yaml, as scripts/install-test-deps.sh installs them.
#
# Runs every check, then names the ones that failed and exits 1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Debian's interpreter, which has python3-yaml, whatever python3 comes first.
python=/usr/bin/python3
check=(scripts/check-deploy.py)
dashboard=docker/grafana/dashboards/callgate.json

for program in yamllint docker-compose promtool "$python"; do
  if ! command -v "$program" >/dev/null; then
    echo "check-deploy: $program is missing; run scripts/install-test-deps.sh" >&2
    exit 1
  fi
done

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# Runs a command, showing its output only if it fails.
quiet() {
  local out
  if out=$("$@" 2>&1); then
    return 0
  fi
  printf '%s\n' "$out" >&2
  return 1
}

yaml_lint() {
  quiet yamllint --strict -c .yamllint .yamllint docker deploy
}

compose() {
  # SECRETS_DIR and PUBLIC_IP of the caller's shell would change what is
  # checked; check the file as committed.
  quiet env -u SECRETS_DIR -u PUBLIC_IP docker-compose -f docker/compose.yaml config -q ||
    return 1
  env -u SECRETS_DIR -u PUBLIC_IP docker-compose -f docker/compose.yaml config \
    >"$scratch/compose.yaml" 2>/dev/null || return 1
  "$python" "${check[@]}" compose "$scratch/compose.yaml" docker/prometheus/prometheus.yml
}

json_files() {
  local files
  mapfile -t files < <(find docker deploy -type f -name '*.json' | sort)
  if [ "${#files[@]}" -eq 0 ]; then
    echo "check-deploy: no JSON file under docker/ or deploy/ (the dashboard is missing)" >&2
    return 1
  fi
  "$python" "${check[@]}" json "${files[@]}"
}

node_configs() {
  local files
  mapfile -t files < <(find docker deploy -type f -name '*.toml' | sort)
  "$python" "${check[@]}" configs "${files[@]}"
}

prometheus_config() {
  quiet promtool check config docker/prometheus/prometheus.yml
}

kubernetes() {
  "$python" "${check[@]}" kubernetes deploy/kubernetes
}

dashboard_metrics() {
  "$python" "${check[@]}" dashboard "$dashboard" docker/grafana/provisioning/datasources src
}

dashboard_promql() {
  "$python" "${check[@]}" promql "$dashboard" >"$scratch/rules.yml" &&
    quiet promtool check rules "$scratch/rules.yml"
}

checks=(yaml_lint compose json_files node_configs prometheus_config kubernetes
  dashboard_metrics dashboard_promql)
failed=()
for name in "${checks[@]}"; do
  if "$name"; then
    echo "check-deploy: ok      $name"
  else
    echo "check-deploy: FAILED  $name" >&2
    failed+=("$name")
  fi
done

if [ "${#failed[@]}" -ne 0 ]; then
  echo "check-deploy: ${#failed[@]} of ${#checks[@]} checks failed: ${failed[*]}" >&2
  exit 1
fi
echo "check-deploy: all ${#checks[@]} checks passed"
