"""Deployment configuration: the Kubernetes manifests and the Dockerfile set
only SCALE_* variables the binaries accept, and the binaries start with them.
(No Docker engine or cluster here: what can be checked is the YAML, the
configuration the binaries read, and kustomize's rendering when kubectl is
installed.)"""
import os
import re
import shutil
import signal
import subprocess
import unittest

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("SCALE_BIN_DIR", os.path.join(ROOT, "build", "test", "bin"))


def documents(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def manifests():
    out = []
    for dirpath, _, files in os.walk(os.path.join(ROOT, "k8s")):
        for name in sorted(files):
            if name.endswith((".yaml", ".yml")):
                out.append(os.path.join(dirpath, name))
    return out


def help_vars(binary):
    res = subprocess.run([os.path.join(BIN, binary), "--help"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return set(re.findall(r"\b(SCALE_[A-Z0-9_]+)", res.stdout))


class Manifests(unittest.TestCase):
    def test_every_manifest_is_valid_yaml_with_kind(self):
        paths = manifests()
        self.assertTrue(paths, "no manifests under k8s/")
        for p in paths:
            for doc in documents(p):
                self.assertIn("kind", doc, p)
                self.assertIn("apiVersion", doc, p)

    def deployments(self):
        for p in manifests():
            for doc in documents(p):
                if doc.get("kind") == "Deployment":
                    yield p, doc

    def test_env_vars_are_ones_the_binary_reads_and_start_it(self):
        found = 0
        for path, dep in self.deployments():
            for c in dep["spec"]["template"]["spec"]["containers"]:
                binary = c["name"]
                known = help_vars(binary)
                for e in c.get("env", []):
                    if e["name"].startswith("SCALE_"):
                        self.assertIn(e["name"], known, f"{path}: {binary} does not read {e['name']}")
                env = {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}
                # Values from Secrets: this test's own stack and secret stand in.
                for e in c.get("env", []):
                    if "valueFrom" in e:
                        env[e["name"]] = os.environ.get(e["name"], "test-secret-for-deploy-check-0123456789abcdef")
                # Probes must target the port the process listens on.
                port = int(env["SCALE_GRPC_ADDR"].rsplit(":", 1)[1])
                for probe in ("readinessProbe", "livenessProbe"):
                    self.assertEqual(c[probe]["grpc"]["port"], port, f"{path}: {probe}")
                self.assertEqual(c["livenessProbe"]["grpc"].get("service"), "liveness",
                                 "liveness must not fail when only the database is down")
                self.assertEqual(env["SCALE_GRPC_ADDR"].rsplit(":", 1)[0], "0.0.0.0",
                                 "probes reach the pod IP: listen on all interfaces")
                # The values themselves pass the binary's validation.
                run_env = dict(os.environ, **env)
                run_env["SCALE_GRPC_ADDR"] = "127.0.0.1:0"
                if "SCALE_METRICS_ADDR" in env:
                    # The scrape annotations must name the port metrics are served on.
                    annotations = dep["spec"]["template"]["metadata"].get("annotations", {})
                    self.assertEqual(annotations.get("prometheus.io/port"), env["SCALE_METRICS_ADDR"].rsplit(":", 1)[1])
                    run_env["SCALE_METRICS_ADDR"] = "127.0.0.1:0"
                proc = subprocess.Popen([os.path.join(BIN, binary)] + c.get("args", []), env=run_env,
                                        stderr=subprocess.PIPE, text=True)
                try:
                    seen = []
                    for _ in range(100):
                        line = proc.stderr.readline()
                        seen.append(line)
                        if not line or "listening on" in line:
                            break
                    self.assertIn("listening on", seen[-1], f"{binary} did not start with {env}: {seen}")
                finally:
                    proc.send_signal(signal.SIGTERM)
                    rest = proc.stderr.read()
                    self.assertEqual(proc.wait(timeout=60), 0, rest)
                found += 1
        self.assertGreater(found, 0)

    @unittest.skipUnless(shutil.which("kubectl"), "kubectl not installed")
    def test_overlays_render(self):
        for overlay in os.listdir(os.path.join(ROOT, "k8s", "overlays")):
            res = subprocess.run(["kubectl", "kustomize", os.path.join(ROOT, "k8s", "overlays", overlay)],
                                 capture_output=True, text=True, timeout=60)
            self.assertEqual(res.returncode, 0, res.stderr)
            kinds = [d["kind"] for d in yaml.safe_load_all(res.stdout) if d]
            self.assertIn("Deployment", kinds)
            docs = [d for d in yaml.safe_load_all(res.stdout) if d]
            secrets = {d["metadata"]["name"]: set(d.get("data", {})) for d in docs if d["kind"] == "Secret"}
            for d in docs:
                if d["kind"] == "Deployment":
                    env = d["spec"]["template"]["spec"]["containers"][0].get("env", [])
                    names = [e["name"] for e in env]
                    self.assertEqual(len(names), len(set(names)), f"duplicate env in {overlay}: {names}")
                    # Every secret a container reads exists in the overlay.
                    for e in env:
                        ref = e.get("valueFrom", {}).get("secretKeyRef")
                        if ref:
                            self.assertIn(ref["key"], secrets.get(ref["name"], set()),
                                          f"{overlay}: {e['name']} reads missing secret {ref}")


class Dockerfile(unittest.TestCase):
    def test_targets_and_env(self):
        with open(os.path.join(ROOT, "Dockerfile"), encoding="utf-8") as f:
            text = f.read()
        targets = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, re.M | re.I)
        self.assertIn("scale-server", targets)
        known = help_vars("scale-server")
        for name in re.findall(r"^ENV\s+(SCALE_[A-Z0-9_]+)=", text, re.M):
            self.assertIn(name, known, f"Dockerfile sets {name}, which no binary reads")
        # Every binary built has a target of its own.
        for binary in ("scale-server",):
            self.assertRegex(text, rf"COPY --from=build /build/bin/{binary} ")


if __name__ == "__main__":
    unittest.main()
