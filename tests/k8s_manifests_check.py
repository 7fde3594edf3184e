#!/usr/bin/env python3
"""Checks the Kubernetes manifests in deploy/k8s against the daemons they run.

Renders an overlay with `kubectl kustomize` (or reads the TFJob file) and checks that
every object is well formed and that names, ports, probes and environment agree with
each other and with the flags of ps_server and ps_worker, read from `--helpfull`.
Prints one line per problem; exits 1 if there is any, 0 otherwise.

Run by tests/k8s_manifests_test.cc (and, with --print_env, by tests/netns_test.cc to start
daemons with a pod's environment); by hand:
  tests/k8s_manifests_check.py --k8s_dir deploy/k8s --overlay cpu \
      --ps_server bazel-bin/server/ps_server --ps_worker bazel-bin/worker/ps_worker
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

try:
    import yaml
except ImportError:
    print("python3-yaml is missing: run deploy/local/install_deps.sh", file=sys.stderr)
    sys.exit(2)

# Read by deploy/docker/entrypoint.sh itself, not flags.
ENTRYPOINT_VARS = {"PS_ROLE", "PS_BIN_DIR"}
BINARY_OF_ROLE = {"server": "ps_server", "worker": "ps_worker"}
DEFAULT_PORT = 50051  # ps_server's --port default
GPU = "nvidia.com/gpu"


class Problems:
    def __init__(self):
        self.lines = []

    def check(self, ok, message):
        if not ok:
            self.lines.append(message)
        return ok



def parse_seconds(text):
    """Seconds in an absl duration such as '60s', '1m', '1m30s' or '0'; -1 if unreadable."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    total, number = 0.0, ""
    text = str(text).strip()
    if text == "0":
        return 0
    i = 0
    while i < len(text):
        c = text[i]
        if c.isdigit() or c == ".":
            number += c
            i += 1
            continue
        unit = "ms" if text[i:i + 2] == "ms" else c
        if unit not in units or not number:
            return -1
        total += float(number) * units[unit]
        number = ""
        i += len(unit)
    return total if not number else -1

def flags_of(binary):
    """The flag names `binary --helpfull` lists."""
    out = subprocess.run([binary, "--helpfull"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True, check=False).stdout
    # The program's own flags: "  --name=default  (type; PS_NAME)"; glog's carry no PS_ name.
    flags = set(re.findall(r"^  --([A-Za-z0-9_]+)=.*  \([a-z0-9]+; PS_[A-Z0-9_]+\)$", out,
                           re.MULTILINE))
    if "servers" not in flags:
        sys.exit("%s --helpfull lists no --servers; output:\n%s" % (binary, out))
    return flags


def render(kubectl, k8s_dir, overlay):
    # Bazel's runfiles are symlinks; kustomize refuses files that resolve outside the
    # kustomization root, so render a plain copy.
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "k8s")
        shutil.copytree(k8s_dir, copy, symlinks=False)
        result = subprocess.run([kubectl, "kustomize", os.path.join(copy, "overlays", overlay)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                universal_newlines=True, check=False)
    if result.returncode != 0:
        sys.exit("kubectl kustomize overlays/%s failed:\n%s" % (overlay, result.stderr))
    return [d for d in yaml.safe_load_all(result.stdout) if d is not None]


def check_well_formed(docs, p):
    seen = set()
    for i, d in enumerate(docs):
        meta = d.get("metadata") if isinstance(d, dict) else None
        name = meta.get("name") if isinstance(meta, dict) else None
        where = "object %d (%s/%s)" % (i, d.get("kind") if isinstance(d, dict) else "?", name)
        if not p.check(isinstance(d, dict), "%s is not a mapping" % where):
            continue
        for field, value in (("apiVersion", d.get("apiVersion")), ("kind", d.get("kind")),
                             ("metadata.name", name)):
            p.check(isinstance(value, str) and value != "", "%s has no %s" % (where, field))
        key = (d.get("kind"), name)
        p.check(key not in seen, "%s/%s is defined twice" % key)
        seen.add(key)


def pod_spec(workload):
    return workload["spec"]["template"]["spec"]


def container_env(container, configmaps, where, p):
    """The container's environment: envFrom ConfigMaps first, then env (which wins)."""
    env = {}
    for source in container.get("envFrom", []):
        name = source.get("configMapRef", {}).get("name")
        if p.check(name in configmaps, "%s: envFrom ConfigMap '%s' is not rendered" %
                   (where, name)):
            env.update(configmaps[name].get("data", {}))
    for e in container.get("env", []):
        env[e["name"]] = e["value"] if "value" in e else "<valueFrom>"
    return env


def check_env_flags(where, env, flags_by_binary, p):
    """Every PS_<FLAG> must be a flag of the binary PS_ROLE selects."""
    role = env.get("PS_ROLE")
    if not p.check(role in BINARY_OF_ROLE, "%s: PS_ROLE='%s' is not server or worker" %
                   (where, role)):
        return
    binary = BINARY_OF_ROLE[role]
    for name in sorted(env):
        if not name.startswith("PS_") or name in ENTRYPOINT_VARS:
            continue
        flag = name[len("PS_"):].lower()
        p.check(flag in flags_by_binary[binary],
                "%s: %s is not a flag of %s (no --%s in its --helpfull)" %
                (where, name, binary, flag))


def named_port(container, name):
    for port in container.get("ports", []):
        if port.get("name") == name:
            return port.get("containerPort")
    return None


def check_probes(where, container, port, p):
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        spec = container.get(probe)
        if spec is None:
            p.check(probe == "startupProbe", "%s: no %s" % (where, probe))
            continue
        grpc = spec.get("grpc")
        if p.check(isinstance(grpc, dict), "%s: %s is not a native gRPC probe" % (where, probe)):
            p.check(grpc.get("port") == port, "%s: %s checks port %s, the gRPC port is %s" %
                    (where, probe, grpc.get("port"), port))


def check_images(docs, p):
    for d in docs:
        if d["kind"] not in ("StatefulSet", "Job", "Deployment"):
            continue
        for c in pod_spec(d)["containers"]:
            image = c.get("image", "")
            p.check(":" in image.rsplit("/", 1)[-1], "%s/%s: image '%s' has no tag" %
                    (d["kind"], d["metadata"]["name"], image))
            p.check("command" not in c, "%s/%s: 'command' bypasses the image's entrypoint" %
                    (d["kind"], d["metadata"]["name"]))


def check_overlay(docs, flags_by_binary, device, p):
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    configmaps = {d["metadata"]["name"]: d for d in by_kind.get("ConfigMap", [])}
    for name, cm in configmaps.items():
        for key in cm.get("data", {}):
            p.check(key.startswith("PS_"), "ConfigMap/%s: key %s is not a PS_<FLAG>" % (name, key))
    for kind in ("Service", "StatefulSet", "Job"):
        if not p.check(len(by_kind.get(kind, [])) == 1, "want exactly one %s, rendered %d" %
                       (kind, len(by_kind.get(kind, [])))):
            return
    svc, sts, job = by_kind["Service"][0], by_kind["StatefulSet"][0], by_kind["Job"][0]
    svc_name, sts_name = svc["metadata"]["name"], sts["metadata"]["name"]
    where_sts = "StatefulSet/" + sts_name
    where_job = "Job/" + job["metadata"]["name"]

    # The headless Service gives the shards their stable names and selects only them.
    p.check(svc["spec"].get("clusterIP") == "None", "Service/%s is not headless" % svc_name)
    p.check(sts["spec"].get("serviceName") == svc_name,
            "%s: serviceName '%s' is not the Service '%s'" %
            (where_sts, sts["spec"].get("serviceName"), svc_name))
    selector = svc["spec"].get("selector", {})
    server_labels = sts["spec"]["template"]["metadata"].get("labels", {})
    worker_labels = job["spec"]["template"]["metadata"].get("labels", {})
    p.check(bool(selector) and selector.items() <= server_labels.items(),
            "Service/%s selector %s does not select the StatefulSet's pods %s" %
            (svc_name, selector, server_labels))
    p.check(not selector.items() <= worker_labels.items(),
            "Service/%s selector %s also selects the worker pods" % (svc_name, selector))
    p.check(sts["spec"]["selector"].get("matchLabels", {}).items() <= server_labels.items(),
            "%s: selector does not match its own pod labels" % where_sts)

    servers = [c for c in pod_spec(sts)["containers"]
               if container_env(c, configmaps, where_sts, Problems()).get("PS_ROLE") == "server"]
    workers = [c for c in pod_spec(job)["containers"]
               if container_env(c, configmaps, where_job, Problems()).get("PS_ROLE") == "worker"]
    if not (p.check(len(servers) == 1, "%s: want one container with PS_ROLE=server" % where_sts)
            and p.check(len(workers) == 1, "%s: want one container with PS_ROLE=worker" %
                        where_job)):
        return
    server, worker = servers[0], workers[0]
    server_env = container_env(server, configmaps, where_sts, p)
    worker_env = container_env(worker, configmaps, where_job, p)
    check_env_flags(where_sts, server_env, flags_by_binary, p)
    check_env_flags(where_job, worker_env, flags_by_binary, p)

    # Hardened pods, each daemon on its pod's address, and who may reach whom.
    check_hardening(where_sts, sts["spec"]["template"], p)
    check_hardening(where_job, job["spec"]["template"], p)
    p.check(field_ref(server, "PS_HOST") == "status.podIP",
            "%s: PS_HOST is not the pod's address (valueFrom status.podIP)" % where_sts)
    p.check(field_ref(worker, "PS_HEALTH_HOST") == "status.podIP",
            "%s: PS_HEALTH_HOST is not the pod's address (valueFrom status.podIP)" % where_job)
    check_network_policies(docs, server_labels, worker_labels, p)
    check_token_files(where_sts, sts["spec"]["template"], server, server_env,
                      ("PS_AUTH_TOKENS_FILE", "PS_TOKEN_FILE"), p)
    check_token_files(where_job, job["spec"]["template"], worker, worker_env, ("PS_TOKEN_FILE",), p)
    check_tls(where_sts, sts["spec"]["template"], server, server_env, "server", p)
    check_tls(where_job, job["spec"]["template"], worker, worker_env, "worker", p)

    # Workers serve the gRPC health service on PS_HEALTH_PORT, which their probes call.
    health = worker_env.get("PS_HEALTH_PORT")
    if p.check(health is not None and str(health).isdigit(),
               "%s: no numeric PS_HEALTH_PORT for the workers' gRPC probes" % where_job):
        p.check(named_port(worker, "health") == int(health),
                "%s: container port 'health' is %s, PS_HEALTH_PORT is %s" %
                (where_job, named_port(worker, "health"), health))
        check_probes(where_job, worker, int(health), p)

    # One gRPC port everywhere: the flag, the container, the probes, the Service, the list.
    port = int(server_env.get("PS_PORT", DEFAULT_PORT))
    p.check(named_port(server, "grpc") == port, "%s: container port 'grpc' is %s, PS_PORT is %d" %
            (where_sts, named_port(server, "grpc"), port))
    # With TLS on the gRPC port the kubelet's probes (plaintext) go to the health port.
    probe_port = port
    if server_env.get("PS_TLS_CERT_FILE"):
        health_port = server_env.get("PS_HEALTH_PORT")
        if p.check(health_port is not None and str(health_port).isdigit(),
                   "%s: TLS on the gRPC port but no numeric PS_HEALTH_PORT for the probes" %
                   where_sts):
            probe_port = int(health_port)
            p.check(named_port(server, "health") == probe_port,
                    "%s: container port 'health' is %s, PS_HEALTH_PORT is %s" %
                    (where_sts, named_port(server, "health"), health_port))
    check_probes(where_sts, server, probe_port, p)
    svc_ports = {sp.get("name"): sp for sp in svc["spec"].get("ports", [])}
    if p.check("grpc" in svc_ports, "Service/%s has no port 'grpc'" % svc_name):
        target = svc_ports["grpc"].get("targetPort", svc_ports["grpc"].get("port"))
        resolved = named_port(server, target) if isinstance(target, str) else target
        p.check(resolved == port and svc_ports["grpc"].get("port") == port,
                "Service/%s port 'grpc' (%s -> %s) is not the shards' port %d" %
                (svc_name, svc_ports["grpc"].get("port"), target, port))
    replicas = sts["spec"].get("replicas", 1)
    want = ["%s-%d.%s:%d" % (sts_name, i, svc_name, port) for i in range(replicas)]
    for where, env in ((where_sts, server_env), (where_job, worker_env)):
        got = env.get("PS_SERVERS", "").split(",")
        p.check(got == want, "%s: PS_SERVERS=%s, want %s (one per replica, in order)" %
                (where, ",".join(got), ",".join(want)))
    # Indices differ per pod: they come from the host name and the completion index.
    p.check("PS_SHARD_INDEX" not in server_env,
            "%s: a fixed PS_SHARD_INDEX gives every shard the same index" % where_sts)
    p.check("PS_WORKER_INDEX" not in worker_env,
            "%s: a fixed PS_WORKER_INDEX gives every worker the same index" % where_job)

    # Shards keep their state: periodic checkpoints bound what a SIGKILL loses, and the
    # final one on SIGTERM is written before the grace period's SIGKILL.
    if p.check(bool(server_env.get("PS_CHECKPOINT_DIR")),
               "%s: no PS_CHECKPOINT_DIR: a restarted shard would lose its tables" % where_sts):
        p.check(parse_seconds(server_env.get("PS_CHECKPOINT_INTERVAL", "0")) > 0,
                "%s: PS_CHECKPOINT_INTERVAL unset or 0: a SIGKILL would lose everything since "
                "the pod started" % where_sts)
    grace = pod_spec(sts).get("terminationGracePeriodSeconds", 30)
    p.check(parse_seconds(server_env.get("PS_SHUTDOWN_TIMEOUT", "10s")) < grace,
            "%s: PS_SHUTDOWN_TIMEOUT %s is not below terminationGracePeriodSeconds %s" %
            (where_sts, server_env.get("PS_SHUTDOWN_TIMEOUT", "10s"), grace))

    # Prometheus scrapes the port the daemon serves metrics on.
    annotations = sts["spec"]["template"]["metadata"].get("annotations", {})
    if p.check(annotations.get("prometheus.io/scrape") == "true",
               "%s: pods are not annotated prometheus.io/scrape: \"true\"" % where_sts):
        metrics = named_port(server, "metrics")
        p.check(metrics is not None and str(metrics) == annotations.get("prometheus.io/port")
                == server_env.get("PS_METRICS_PORT"),
                "%s: metrics port: container %s, annotation %s, PS_METRICS_PORT %s" %
                (where_sts, metrics, annotations.get("prometheus.io/port"),
                 server_env.get("PS_METRICS_PORT")))

    # Checkpoints go to the per-shard volume.
    claims = [t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates", [])]
    mounts = {m["name"]: m["mountPath"] for m in server.get("volumeMounts", [])}
    checkpoint_dir = server_env.get("PS_CHECKPOINT_DIR")
    p.check(checkpoint_dir is not None, "%s: PS_CHECKPOINT_DIR is not set" % where_sts)
    p.check(any(checkpoint_dir is not None and mounts.get(c) is not None and
                (checkpoint_dir + "/").startswith(mounts[c].rstrip("/") + "/") for c in claims),
            "%s: PS_CHECKPOINT_DIR=%s is not on a volumeClaimTemplate (%s mounted at %s)" %
            (where_sts, checkpoint_dir, claims, mounts))

    # The workers: an Indexed Job whose size is the worker count.
    spec = job["spec"]
    p.check(spec.get("completionMode") == "Indexed", "%s is not an Indexed Job" % where_job)
    num_workers = worker_env.get("PS_NUM_WORKERS")
    p.check(num_workers is not None and
            spec.get("completions") == spec.get("parallelism") == int(num_workers),
            "%s: completions %s, parallelism %s and PS_NUM_WORKERS %s differ" %
            (where_job, spec.get("completions"), spec.get("parallelism"), num_workers))
    p.check(pod_spec(job).get("restartPolicy") in ("OnFailure", "Never"),
            "%s: restartPolicy must be OnFailure or Never" % where_job)
    check_images(docs, p)

    # The overlay's device.
    p.check(worker_env.get("PS_DEVICE") == device, "%s: PS_DEVICE=%s, want %s" %
            (where_job, worker_env.get("PS_DEVICE"), device))
    gpus = str(worker.get("resources", {}).get("limits", {}).get(GPU, "0"))
    if device == "cuda":
        p.check(gpus.isdigit() and int(gpus) >= 1, "%s: no %s limit" % (where_job, GPU))
        p.check(any(t.get("key") == GPU for t in pod_spec(job).get("tolerations", [])),
                "%s: no toleration for %s" % (where_job, GPU))
        p.check(worker["image"].endswith(":gpu"), "%s: image %s is not the GPU image" %
                (where_job, worker["image"]))
    else:
        for d in (sts, job):
            for c in pod_spec(d)["containers"]:
                res = c.get("resources", {})
                where = "%s/%s" % (d["kind"], d["metadata"]["name"])
                p.check(GPU not in res.get("limits", {}) and GPU not in res.get("requests", {}),
                        "%s: the CPU overlay asks for %s" % (where, GPU))
                p.check("cpu" in res.get("requests", {}), "%s: no CPU request" % where)


def field_ref(container, name):
    """The fieldPath the variable `name` comes from (downward API), or None."""
    for e in container.get("env", []):
        if e.get("name") == name:
            return e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
    return None


def check_hardening(where, template, p):
    """docs/security.md: no privilege, no writable image, no API token, in every pod."""
    spec = template["spec"]
    pod_sc = spec.get("securityContext", {})
    p.check(pod_sc.get("runAsNonRoot") is True, "%s: pod securityContext.runAsNonRoot is not "
            "true" % where)
    p.check(pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
            "%s: pod seccompProfile is not RuntimeDefault" % where)
    p.check(spec.get("automountServiceAccountToken") is False,
            "%s: automountServiceAccountToken is not false (the daemons call no Kubernetes "
            "API)" % where)
    for c in spec.get("containers", []):
        cw = "%s container %s" % (where, c.get("name"))
        sc = c.get("securityContext", {})
        p.check(sc.get("allowPrivilegeEscalation") is False,
                "%s: allowPrivilegeEscalation is not false" % cw)
        p.check(sc.get("readOnlyRootFilesystem") is True,
                "%s: readOnlyRootFilesystem is not true" % cw)
        p.check(sc.get("capabilities", {}).get("drop") == ["ALL"],
                "%s: capabilities.drop is not [ALL]" % cw)
        p.check(sc.get("privileged") is not True, "%s: privileged" % cw)
        p.check(not sc.get("capabilities", {}).get("add"), "%s: adds capabilities" % cw)
        # A read-only root: what the daemons write goes to volumes.
        mounts = {m.get("mountPath") for m in c.get("volumeMounts", [])}
        p.check("/tmp" in mounts, "%s: no volume at /tmp under a read-only root" % cw)


def secret_mounts(template, container):
    """mountPath -> Secret name for the container's Secret volumes."""
    secrets = {v["name"]: v["secret"].get("secretName")
               for v in template["spec"].get("volumes", []) if "secret" in v}
    return {m["mountPath"]: secrets[m["name"]]
            for m in container.get("volumeMounts", []) if m.get("name") in secrets}


def check_token_files(where, template, container, env, names, p):
    """Each of `names` is a file on a Secret volume (tokens never in the manifest)."""
    mounts = secret_mounts(template, container)
    for name in names:
        path = env.get(name)
        if not p.check(bool(path) and path != "<valueFrom>", "%s: no %s" % (where, name)):
            continue
        p.check(any(path.startswith(m.rstrip("/") + "/") for m in mounts),
                "%s: %s=%s is not on a Secret volume (mounted: %s)" % (where, name, path, mounts))
    for name, value in env.items():
        p.check("TOKEN" not in name or name.endswith("_FILE"),
                "%s: %s puts a token in the manifest; mount it from a Secret" % (where, name))


def check_tls(where, template, container, env, role, p):
    """Mutual TLS: certificates and the CA from a Secret; the shards require clients'."""
    names = (("PS_TLS_CERT_FILE", "PS_TLS_KEY_FILE", "PS_TLS_CA_FILE") if role == "server"
             else ("PS_TLS_CA_FILE", "PS_TLS_CERT_FILE", "PS_TLS_KEY_FILE"))
    mounts = secret_mounts(template, container)
    for name in names:
        path = env.get(name)
        if p.check(bool(path) and path != "<valueFrom>", "%s: no %s (TLS is off)" % (where, name)):
            p.check(any(path.startswith(m.rstrip("/") + "/") for m in mounts),
                    "%s: %s=%s is not on a Secret volume" % (where, name, path))
    if role == "server":
        p.check(env.get("PS_TLS_CLIENT_CERTS") == "require",
                "%s: PS_TLS_CLIENT_CERTS=%s, want require (mutual TLS)" %
                (where, env.get("PS_TLS_CLIENT_CERTS")))


def labels_select(selector, labels):
    match = selector.get("matchLabels", {})
    return bool(match) and match.items() <= labels.items()


def check_network_policies(docs, server_labels, worker_labels, p):
    """Only workers, psctl and the shards reach the shards' gRPC port; nothing the workers."""
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    psctl_labels = dict(worker_labels, **{"app.kubernetes.io/component": "psctl"})
    allowed = (server_labels, worker_labels, psctl_labels)
    for labels, what in ((server_labels, "shards"), (worker_labels, "workers")):
        mine = [d for d in policies if labels_select(d["spec"].get("podSelector", {}), labels)]
        if not p.check(len(mine) == 1, "want one NetworkPolicy selecting the %s, rendered %d" %
                       (what, len(mine))):
            continue
        pol = mine[0]
        where = "NetworkPolicy/" + pol["metadata"]["name"]
        p.check("Ingress" in pol["spec"].get("policyTypes", []),
                "%s: policyTypes has no Ingress" % where)
        rules = pol["spec"].get("ingress", [])
        if what == "workers":
            p.check(rules == [], "%s: admits traffic to the workers: %s" % (where, rules))
            continue
        grpc_rules = [r for r in rules
                      if any(pt.get("port") in ("grpc", DEFAULT_PORT) for pt in r.get("ports", []))
                      or not r.get("ports")]
        p.check(bool(grpc_rules), "%s: no rule admits the workers to the gRPC port" % where)
        for r in grpc_rules:
            sources = r.get("from", [])
            p.check(bool(sources), "%s: a rule admits anyone to the gRPC port" % where)
            for src in sources:
                sel = src.get("podSelector")
                p.check(set(src) == {"podSelector"} and sel is not None and
                        any(sel.get("matchLabels", {}) == a for a in allowed),
                        "%s: the gRPC port admits %s, not only workers, psctl and shards" %
                        (where, src))
        admitted = [a for r in grpc_rules for src in r.get("from", [])
                    for a in allowed if src.get("podSelector", {}).get("matchLabels") == a]
        p.check(worker_labels in admitted and psctl_labels in admitted,
                "%s: the gRPC port does not admit both the workers and psctl" % where)


def load_tfjob(k8s_dir):
    with open(os.path.join(k8s_dir, "tfjob", "tfjob.yaml")) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def check_tfjob(docs, flags_by_binary, p):
    check_well_formed(docs, p)
    if not p.check(len(docs) == 1 and docs[0].get("kind") == "TFJob", "tfjob.yaml: want one TFJob"):
        return
    job = docs[0]
    p.check(job.get("apiVersion") == "kubeflow.org/v1", "TFJob: apiVersion is not kubeflow.org/v1")
    replicas = job.get("spec", {}).get("tfReplicaSpecs", {})
    p.check({"PS", "Worker"} <= set(replicas), "TFJob: want PS and Worker replica specs")
    role_of = {"PS": "server", "Worker": "worker", "Chief": "worker", "Master": "worker"}
    for rtype, rspec in replicas.items():
        where = "TFJob replica %s" % rtype
        if not p.check(rtype in role_of, "%s: unsupported replica type" % where):
            continue
        # The operator injects TF_CONFIG into the container named "tensorflow" only.
        containers = {c["name"]: c for c in rspec["template"]["spec"]["containers"]}
        if not p.check("tensorflow" in containers, "%s: no container named tensorflow" % where):
            continue
        c = containers["tensorflow"]
        env = container_env(c, {}, where, p)
        p.check(env.get("PS_ROLE") == role_of[rtype], "%s: PS_ROLE=%s, want %s" %
                (where, env.get("PS_ROLE"), role_of[rtype]))
        check_env_flags(where, env, flags_by_binary, p)
        for derived in ("PS_SERVERS", "PS_SHARD_INDEX", "PS_PORT", "PS_WORKER_INDEX",
                        "PS_NUM_WORKERS"):
            p.check(derived not in env, "%s: %s would override what TF_CONFIG gives" %
                    (where, derived))
        port = named_port(c, "tfjob-port")
        p.check(port is not None, "%s: no port named tfjob-port (the TF_CONFIG addresses)" % where)
        if rtype == "PS":
            health = env.get("PS_HEALTH_PORT")
            p.check(bool(health) and str(health).isdigit() and
                    named_port(c, "health") == int(health),
                    "%s: TLS on the gRPC port, but no plaintext health port for the probes" % where)
            check_probes(where, c, int(health) if str(health).isdigit() else port, p)
            annotations = rspec["template"].get("metadata", {}).get("annotations", {})
            if annotations.get("prometheus.io/scrape") == "true":
                p.check(str(named_port(c, "metrics")) == annotations.get("prometheus.io/port")
                        == env.get("PS_METRICS_PORT"), "%s: metrics ports differ" % where)
        p.check(":" in c.get("image", "").rsplit("/", 1)[-1], "%s: image has no tag" % where)
        check_hardening(where, rspec["template"], p)
        check_tls(where, rspec["template"], c, env, "server" if rtype == "PS" else "worker", p)
        check_token_files(where, rspec["template"], c, env,
                          ("PS_AUTH_TOKENS_FILE", "PS_TOKEN_FILE") if rtype == "PS"
                          else ("PS_TOKEN_FILE",), p)
        if rtype == "PS":
            p.check(field_ref(c, "PS_HOST") == "status.podIP",
                    "%s: PS_HOST is not the pod's address (valueFrom status.podIP)" % where)


def pod_templates(docs):
    """Every pod template: the workloads' and the TFJob's replica specs'."""
    for d in docs:
        if d["kind"] in ("StatefulSet", "Job"):
            yield d["spec"]["template"]
        elif d["kind"] == "TFJob":
            for rspec in d["spec"]["tfReplicaSpecs"].values():
                yield rspec["template"]


def print_env(docs, role):
    """Prints NAME=VALUE for each literal variable of the pod that runs `role`."""
    configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    for template in pod_templates(docs):
        for c in template["spec"]["containers"]:
            env = container_env(c, configmaps, "", Problems())
            if env.get("PS_ROLE") == role:
                for name in sorted(env):
                    if env[name] != "<valueFrom>":
                        print("%s=%s" % (name, env[name]))
                return 0
    print("no pod runs PS_ROLE=%s" % role, file=sys.stderr)
    return 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k8s_dir", required=True)
    parser.add_argument("--ps_server")
    parser.add_argument("--ps_worker")
    parser.add_argument("--kubectl", default="kubectl")
    parser.add_argument("--overlay", help="render and check overlays/<name> (cpu or gpu)")
    parser.add_argument("--tfjob", action="store_true", help="check tfjob/tfjob.yaml")
    parser.add_argument("--print_env", choices=sorted(BINARY_OF_ROLE),
                        help="print the environment of this role's pods in the overlay or the "
                        "TFJob; no checks")
    args = parser.parse_args()
    if args.print_env:
        docs = (load_tfjob(args.k8s_dir) if args.tfjob else
                render(args.kubectl, args.k8s_dir, args.overlay))
        return print_env(docs, args.print_env)
    if not (args.ps_server and args.ps_worker):
        parser.error("--ps_server and --ps_worker are needed for the checks")
    flags = {"ps_server": flags_of(args.ps_server), "ps_worker": flags_of(args.ps_worker)}
    p = Problems()
    if args.overlay:
        docs = render(args.kubectl, args.k8s_dir, args.overlay)
        check_well_formed(docs, p)
        if not p.lines:
            check_overlay(docs, flags, "cuda" if args.overlay == "gpu" else args.overlay, p)
        print("overlays/%s: %d objects rendered" % (args.overlay, len(docs)))
    if args.tfjob:
        check_tfjob(load_tfjob(args.k8s_dir), flags, p)
    for line in p.lines:
        print("PROBLEM: " + line)
    print("%d problems" % len(p.lines))
    return 1 if p.lines else 0


if __name__ == "__main__":
    sys.exit(main())
