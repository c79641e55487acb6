#!/usr/bin/python3
"""The checks of scripts/check-deploy.sh that need more than a linter.

    check-deploy.py json FILE...           every file parses as strict JSON
    check-deploy.py configs FILE...        node configs: TOML, no inline secret
    check-deploy.py compose RESOLVED PROM  the compose cluster's nodes
    check-deploy.py kubernetes DIR         the manifests' node workload
    check-deploy.py dashboard JSON DS_DIR SRC_DIR
                                           the dashboard's metrics and datasources
    check-deploy.py promql JSON            prints the dashboard's queries as a
                                           Prometheus rules file, for promtool

Each prints one line per problem, names the file and what is wrong, and
exits 1 if there was any. Run from the repository root: the maximum call
duration's default is read from config/callgate.toml.
"""

import json
import pathlib
import re
import sys
import tomllib

import yaml

problems = []


def bad(where, message):
    problems.append(f"{where}: {message}")


# -- JSON -------------------------------------------------------------------

def no_duplicate_keys(pairs):
    keys = [key for key, _ in pairs]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ValueError(f"duplicate keys {duplicates}")
    return dict(pairs)


def reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def load_json(path):
    text = pathlib.Path(path).read_text()
    return json.loads(text, object_pairs_hook=no_duplicate_keys,
                      parse_constant=reject_constant)


def check_json(paths):
    for path in paths:
        try:
            load_json(path)
        except ValueError as error:
            bad(path, f"not valid JSON: {error}")


# -- node configs -----------------------------------------------------------

# Keys the node refuses because they would hold a secret inline.
INLINE_SECRET_KEYS = {"password", "secret", "access_key_id", "secret_access_key",
                      "credential", "auth_secret", "redis_password"}


def inline_secrets(table, prefix=""):
    """Dotted names of keys that hold a secret in the config text itself."""
    found = []
    items = table.items() if isinstance(table, dict) else enumerate(table)
    for key, value in items:
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, (dict, list)):
            found += inline_secrets(value, name)
        elif key in INLINE_SECRET_KEYS:
            found.append(name)
        elif isinstance(value, str) and re.match(r"^[a-z]+://[^/@]*:[^/@]*@", value):
            found.append(f"{name} (a password in the URL)")
    return found


def check_config_text(where, text):
    """Parses one node config; returns it, or None after reporting why not."""
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        bad(where, f"not valid TOML: {error}")
        return None
    for name in inline_secrets(config):
        bad(where, f"{name}: a secret inline; use its *_env or *_file setting")
    return config


def check_configs(paths):
    for path in paths:
        check_config_text(path, pathlib.Path(path).read_text())


# -- compose ----------------------------------------------------------------

def is_node(service):
    build = service.get("build") or {}
    return str(build.get("dockerfile", "")).endswith("docker/Dockerfile")


def check_compose(resolved_path, prometheus_path):
    where = "docker/compose.yaml"
    services = yaml.safe_load(pathlib.Path(resolved_path).read_text())["services"]
    nodes = {name: s for name, s in services.items() if is_node(s)}
    if len(nodes) < 2:
        bad(where, f"a cluster needs two nodes built from docker/Dockerfile, found {sorted(nodes)}")
    ids = {}
    for name, service in nodes.items():
        node_id = (service.get("environment") or {}).get("CALLGATE_NODE_ID")
        if not node_id:
            bad(where, f"{name}: no CALLGATE_NODE_ID (every node needs its own node.id)")
        elif node_id in ids:
            bad(where, f"{name}: node id {node_id!r} is also {ids[node_id]}'s")
        else:
            ids[node_id] = name
    published = {}
    for name, service in services.items():
        for port in service.get("ports") or []:
            if not isinstance(port, dict) or "published" not in port:
                continue
            key = (str(port.get("host_ip", "")), int(port["published"]),
                   port.get("protocol", "tcp"))
            if key in published and published[key] != name:
                bad(where, f"{name} and {published[key]} both publish {key[1]}/{key[2]}")
            published[key] = name
    prometheus = yaml.safe_load(pathlib.Path(prometheus_path).read_text())
    targets = {target.split(":")[0]
               for job in prometheus.get("scrape_configs") or []
               for static in job.get("static_configs") or []
               for target in static.get("targets") or []}
    for name in sorted(set(nodes) - targets):
        bad(prometheus_path, f"does not scrape the node {name}")


# -- Kubernetes -------------------------------------------------------------

WORKLOADS = {"StatefulSet", "DaemonSet", "Deployment"}
# The node hangs up what a drain left (CANCELs and BYEs get 2 s) and waits
# up to 10 s for in-flight work before it exits.
GRACE_MARGIN_SECS = 30


def default_max_call_secs():
    config = tomllib.loads(pathlib.Path("config/callgate.toml").read_text())
    return int(config["sip"]["max_call_duration_secs"])


def drain_secs(configs, env):
    """How long a SIGTERM lets calls go on, from the configs and env."""
    def setting(section, key, variable):
        if env.get(variable):
            return int(env[variable])
        values = [c.get(section, {}).get(key) for c in configs]
        values = [v for v in values if v is not None]
        return int(values[-1]) if values else None

    drain = setting("node", "drain_timeout_secs", "CALLGATE_NODE_DRAIN_TIMEOUT_SECS")
    if drain:
        return drain, "node.drain_timeout_secs"
    max_call = setting("sip", "max_call_duration_secs", "CALLGATE_SIP_MAX_CALL_DURATION_SECS")
    if max_call:
        return max_call, "sip.max_call_duration_secs"
    return default_max_call_secs(), "the default sip.max_call_duration_secs"


def load_manifests(directory):
    docs = []
    for path in sorted(pathlib.Path(directory).glob("*.y*ml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict):
                docs.append((path, doc))
    return docs


def probe_path(container, probe):
    return (((container.get(probe) or {}).get("httpGet")) or {}).get("path")


def check_workload(path, workload, config_maps, services):
    name = f"{path}: {workload['kind']} {workload['metadata']['name']}"
    pod = workload["spec"]["template"]["spec"]
    labels = workload["spec"]["template"]["metadata"].get("labels") or {}
    container = next(c for c in pod["containers"] if "callgate" in c.get("image", ""))
    if pod.get("hostNetwork") is not True:
        bad(name, "hostNetwork must be true: media is a UDP port range on the host")
    if pod.get("dnsPolicy") != "ClusterFirstWithHostNet":
        bad(name, "dnsPolicy must be ClusterFirstWithHostNet, or Services do not resolve")
    env = {e["name"]: e.get("value", "") for e in container.get("env") or []}
    for entry in container.get("env") or []:
        if "secretKeyRef" in (entry.get("valueFrom") or {}):
            bad(name, f"env {entry['name']} comes from a Secret: mount secrets as files")
    configs = []
    for volume in pod.get("volumes") or []:
        if "configMap" in volume:
            data = config_maps.get(volume["configMap"]["name"], {})
            for key, text in data.items():
                if key.endswith(".toml"):
                    config = check_config_text(f"{path}: ConfigMap {key}", text)
                    configs.append(config or {})
    if not configs:
        bad(name, "mounts no ConfigMap holding the node config (*.toml)")
    drain, source = drain_secs(configs, env)
    grace = pod.get("terminationGracePeriodSeconds")
    if not isinstance(grace, int) or grace < drain + GRACE_MARGIN_SECS:
        bad(name, f"terminationGracePeriodSeconds is {grace}: it must be at least "
                  f"{drain + GRACE_MARGIN_SECS} ({source} {drain} + {GRACE_MARGIN_SECS} s), "
                  "or the kubelet kills calls in progress")
    pre_stop = (container.get("lifecycle") or {}).get("preStop")
    if not pre_stop:
        bad(name, "the callgate container has no preStop hook")
    elif re.search(r"\bkill\b", " ".join((pre_stop.get("exec") or {}).get("command", []))):
        bad(name, "preStop must not signal the node: the kubelet's SIGTERM would then be "
                  "the second signal, which hangs up every call")
    if probe_path(container, "livenessProbe") != "/healthz":
        bad(name, "livenessProbe must be an httpGet of /healthz")
    if probe_path(container, "readinessProbe") != "/readyz":
        bad(name, "readinessProbe must be an httpGet of /readyz")
    if not any(s["spec"].get("selector") and s["spec"].get("type") != "ExternalName"
               and s["spec"].get("clusterIP") != "None"
               and s["spec"]["selector"].items() <= labels.items() for s in services):
        bad(name, "no Service (with a cluster IP) selects its pods for HTTP signalling")


def check_kubernetes(directory):
    docs = load_manifests(directory)
    config_maps = {d["metadata"]["name"]: d.get("data") or {}
                   for _, d in docs if d.get("kind") == "ConfigMap"}
    services = [d for _, d in docs if d.get("kind") == "Service"]
    workloads = [(p, d) for p, d in docs if d.get("kind") in WORKLOADS
                 and any("callgate" in c.get("image", "")
                         for c in d["spec"]["template"]["spec"]["containers"])]
    if not workloads:
        bad(directory, "no StatefulSet, DaemonSet or Deployment runs the callgate image")
    for path, workload in workloads:
        check_workload(path, workload, config_maps, services)
    kustomization = pathlib.Path(directory, "kustomization.yaml")
    if kustomization.exists():
        listed = yaml.safe_load(kustomization.read_text()).get("resources") or []
        for resource in listed:
            if not pathlib.Path(directory, resource).exists():
                bad(kustomization, f"lists {resource}, which does not exist")
        for path in sorted({p for p, _ in docs} - {kustomization}):
            if path.name not in listed:
                bad(kustomization, f"does not list {path.name}")


# -- dashboard --------------------------------------------------------------

METRIC = re.compile(r"\bcallgate_[a-z0-9_]+")
HISTOGRAM_SERIES = re.compile(r"_(bucket|sum|count)$")


def queries(node):
    """Every PromQL text in a dashboard: targets' expr, variables' query."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "query", "definition") and isinstance(value, str):
                yield value
            else:
                yield from queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from queries(item)


def datasource_uids(node):
    if isinstance(node, dict):
        source = node.get("datasource")
        if isinstance(source, dict) and "uid" in source:
            yield source["uid"]
        for value in node.values():
            yield from datasource_uids(value)
    elif isinstance(node, list):
        for item in node:
            yield from datasource_uids(item)


def check_dashboard(dashboard_path, datasource_dir, src_dir):
    dashboard = load_json(dashboard_path)
    literals = set()
    for source in pathlib.Path(src_dir).rglob("*.rs"):
        literals.update(re.findall(r'"(callgate_[a-z0-9_]+)"', source.read_text()))
    used = {name for text in queries(dashboard) for name in METRIC.findall(text)}
    if not used:
        bad(dashboard_path, "no query names a callgate_ metric")
    for name in sorted(used):
        family = HISTOGRAM_SERIES.sub("", name)
        if name not in literals and family not in literals:
            bad(dashboard_path, f"{name}: no metric \"{family}\" under {src_dir}/ "
                                "(a typo, or a metric that was renamed or not added yet)")
    provisioned = {source.get("uid")
                   for path in pathlib.Path(datasource_dir).glob("*.y*ml")
                   for source in yaml.safe_load(path.read_text()).get("datasources") or []}
    for uid in sorted(set(datasource_uids(dashboard)) - provisioned):
        bad(dashboard_path, f"uses datasource uid {uid!r}, which {datasource_dir}/ does not "
                            "provision")
    ids = [panel.get("id") for panel in dashboard.get("panels") or []]
    if len(ids) != len(set(ids)):
        bad(dashboard_path, "two panels share an id")


# Grafana's variables, replaced by something Prometheus parses.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h",
                     "$instance": ".*"}


def print_rules(dashboard_path):
    """Each panel query as a recording rule named dashboard:panel_ID:REFID."""
    rules = []
    for panel in load_json(dashboard_path).get("panels") or []:
        for target in panel.get("targets") or []:
            expr = target.get("expr", "")
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            rules.append({"record": f"dashboard:panel_{panel.get('id')}:{target.get('refId')}",
                          "expr": expr})
    print(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, sort_keys=False))


# -- main -------------------------------------------------------------------

COMMANDS = {
    "json": check_json,
    "configs": check_configs,
    "compose": lambda args: check_compose(*args),
    "kubernetes": lambda args: check_kubernetes(*args),
    "dashboard": lambda args: check_dashboard(*args),
    "promql": lambda args: print_rules(*args),
}


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 64
    try:
        COMMANDS[sys.argv[1]](sys.argv[2:])
    except (OSError, ValueError, KeyError, TypeError, StopIteration, yaml.YAMLError) as error:
        bad(sys.argv[1], f"could not be checked: {type(error).__name__}: {error}")
    for problem in problems:
        print(f"check-deploy: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
