"""`make check-kubernetes`: check every manifest and values file in infra/kubernetes with the
validators that run without a cluster, and say what each check was (docs/deploy-kubernetes.md).

- Kubernetes' own kinds (ConfigMap, Job, PVC, and what the Spark Operator's chart renders):
  kubernetes-validate (PyPI), strict, against the OpenAPI schemas of Kubernetes 1.33.
- The Spark Operator's values: `helm template` of its chart (2.3.0, from its Go module), whose
  output is then checked as above.
- Custom resources, against their CRD's OpenAPI schema with unknown fields refused (what
  `kubectl apply --validate=strict` does):
  - SparkConnect: the CRD in the Spark Operator's module;
  - Strimzi's Kafka, KafkaNodePool and KafkaUser (kafka.yaml, and what `loopline kafka-users`
    prints): CRDs generated from Strimzi's API model (io.strimzi:api 0.49.0, Maven Central) by
    Strimzi's own generator (io.strimzi:crd-generator, which needs Java 21 or newer).
- airflow-values.yaml: parsed only. The official Airflow chart cannot be fetched here.

Tools are fetched into the state folder's kubernetes-check/ on first use: helm (built from the
Go module proxy), the Spark Operator's module, Strimzi's jars (Maven).
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WORK = Path(os.environ.get("LOOPLINE_STATE_DIR", REPO / ".loopline")) / "kubernetes-check"
HELM = "helm.sh/helm/v3/cmd/helm@v3.22.0"
SPARK_OPERATOR = "github.com/kubeflow/spark-operator/v2@v2.3.0"
KUBERNETES_VALIDATE = "kubernetes-validate==1.37.0"
KUBERNETES_VERSION = "1.33"
STRIMZI_KINDS = {"Kafka": "kafka.Kafka", "KafkaNodePool": "nodepool.KafkaNodePool", "KafkaUser": "user.KafkaUser"}
CORE_GROUPS = ("v1", "apps/", "batch/", "rbac.authorization.k8s.io/", "policy/", "networking.k8s.io/",
               "admissionregistration.k8s.io/", "apiextensions.k8s.io/", "coordination.k8s.io/")


def run(command: list[str], **kwargs) -> str:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise SystemExit(f"ERROR: {' '.join(command[:3])} ... failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return result.stdout


def helm() -> str:
    binary = WORK / "bin" / "helm"
    if not binary.exists():
        print(f"building helm ({HELM}) from the Go module proxy")
        run(["go", "install", HELM], env={**os.environ, "GOBIN": str(binary.parent)})
    return str(binary)


def spark_operator() -> Path:
    return Path(json.loads(run(["go", "mod", "download", "-json", SPARK_OPERATOR]))["Dir"])


def java21() -> str:
    """A java of version 21 or newer (Strimzi's generator needs it): JAVA21_HOME, or one in /usr/lib/jvm."""
    candidates = [os.environ.get("JAVA21_HOME", ""), *sorted(glob.glob("/usr/lib/jvm/*"), reverse=True)]
    for home in filter(None, candidates):
        java = Path(home) / "bin" / "java"
        if java.exists() and _java_major(str(java)) >= 21:
            return str(java)
    raise SystemExit("ERROR: Strimzi's CRD generator needs Java 21 or newer: set JAVA21_HOME to one")


def _java_major(java: str) -> int:
    version = subprocess.run([java, "-version"], capture_output=True, text=True).stderr.split('"')
    return int(version[1].split(".")[0]) if len(version) > 1 else 0


def strimzi_crds() -> dict[str, dict]:
    folder = WORK / "strimzi"
    classpath = folder / "classpath.txt"
    if not classpath.exists():
        folder.mkdir(parents=True, exist_ok=True)
        run(["mvn", "-B", "-q", "--strict-checksums", "-f", str(HERE / "strimzi-crds.pom.xml"),
             "dependency:build-classpath", f"-Dmdep.outputFile={classpath}"])
    java = java21()
    crds = {}
    for kind, model in STRIMZI_KINDS.items():
        target = folder / f"{kind}.yaml"
        if not target.exists():
            run([java, "-cp", classpath.read_text().strip(), "io.strimzi.crdgenerator.CrdGenerator", "--yaml",
                 "--crd-api-version", "v1", "--api-versions", "v1", "--storage-version", "v1",
                 f"io.strimzi.api.kafka.model.{model}={target}"])
        crds[kind] = yaml.safe_load(target.read_text())
    return crds


def strict(schema):
    """The schema with unknown fields refused wherever the CRD does not keep them."""
    if isinstance(schema, dict):
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        for value in schema.values():
            strict(value)
    elif isinstance(schema, list):
        for value in schema:
            strict(value)
    return schema


def crd_schemas(crds: list[dict]) -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> the version's OpenAPI schema, made strict."""
    schemas = {}
    for crd in crds:
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schemas[(f"{group}/{version['name']}", kind)] = strict(version["schema"]["openAPIV3Schema"])
    return schemas


def validate_core(documents: list[dict], what: str) -> int:
    """kubernetes-validate, strict, on the documents of Kubernetes' own kinds."""
    core = [d for d in documents if d["apiVersion"].startswith(CORE_GROUPS)]
    if not core:
        return 0
    scratch = WORK / "core.yaml"
    scratch.write_text(yaml.safe_dump_all(core))
    uv = shutil.which("uv") or str(REPO / ".venv" / "bin" / "uv")
    run([uv, "tool", "run", "--quiet", "--from", KUBERNETES_VALIDATE, "kubernetes-validate", "--strict",
         "-k", KUBERNETES_VERSION, str(scratch)])
    print(f"  ok  {what}: {len(core)} objects ({', '.join(sorted({d['kind'] for d in core}))}), "
          f"kubernetes-validate --strict, Kubernetes {KUBERNETES_VERSION}")
    return len(core)


def validate_custom(documents: list[dict], schemas: dict[tuple[str, str], dict], what: str) -> None:
    custom = [d for d in documents if not d["apiVersion"].startswith(CORE_GROUPS)]
    for document in custom:
        schema = schemas.get((document["apiVersion"], document["kind"]))
        if schema is None:
            raise SystemExit(f"ERROR: {what}: no CRD schema for {document['apiVersion']} {document['kind']}")
        try:
            jsonschema.validate(document, schema)
        except jsonschema.ValidationError as error:
            raise SystemExit(f"ERROR: {what}: {document['kind']} {document['metadata']['name']}: {error.message} "
                             f"at {'/'.join(map(str, error.absolute_path))}") from None
    if custom:
        print(f"  ok  {what}: {len(custom)} custom resources ({', '.join(sorted({d['kind'] for d in custom}))}), "
              "against their CRDs' schemas, unknown fields refused")


def documents_of(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def main() -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    operator = spark_operator()
    schemas = crd_schemas([*strimzi_crds().values(),
                           *(yaml.safe_load(p.read_text()) for p in (operator / "config" / "crd" / "bases").glob("*.yaml"))])
    print("Checking infra/kubernetes:")
    for name in ("settings.yaml", "kafka.yaml", "spark-connect.yaml"):
        documents = documents_of((HERE / name).read_text())
        validate_core(documents, name)
        validate_custom(documents, schemas, name)
    users = documents_of(run([str(REPO / ".venv" / "bin" / "loopline"), "kafka-users", "--cluster", "loopline"]))
    validate_custom(users, schemas, "`loopline kafka-users` (every pipeline's ACLs)")
    rendered = run([helm(), "template", "spark-operator", str(operator / "charts" / "spark-operator-chart"),
                    "--namespace", "spark-operator", "-f", str(HERE / "spark-operator-values.yaml")])
    validate_core(documents_of(rendered), "spark-operator-values.yaml, rendered by helm template (chart 2.3.0)")
    values = yaml.safe_load((HERE / "airflow-values.yaml").read_text())
    print(f"  --  airflow-values.yaml: parsed ({len(values)} top-level keys); NOT rendered: the official Airflow "
          "chart cannot be fetched here")
    print("  --  spark.Dockerfile: NOT built: apache/spark cannot be pulled here")
    return 0


if __name__ == "__main__":
    sys.exit(main())
