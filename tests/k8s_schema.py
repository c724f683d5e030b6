"""Offline validation of Kubernetes objects against the API schema of a pinned Kubernetes release.

The schemas come from Go modules through the Go module proxy (`go mod download`, checked against
the checksum database like any module): `k8s.io/kubernetes` carries the API server's OpenAPI
document (`api/openapi-spec/swagger.json`), the Prometheus Operator's module its CRDs
(ServiceMonitor, PrometheusRule). Validation is strict, as `kubectl apply --validate=strict` is: a
field the schema does not have is an error (the OpenAPI document leaves `additionalProperties`
open, so it is closed here wherever the API server would reject unknown fields), quantities and
int-or-string fields take what the API server takes, and object names follow the API server's
naming rules.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft4Validator, Draft7Validator

# the API server's own patterns (k8s.io/apimachinery/pkg/util/validation)
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
QUANTITY = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
SWAGGER = "api/openapi-spec/swagger.json"
OPERATOR_CRDS = "example/prometheus-operator-crd"


class _CRDLoader(yaml.SafeLoader):
    """YAML 1.1 reads a bare `=` (a relabel action in the operator's enums) as the `value` tag."""


_CRDLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def module_zip(go: str, module: str, version: str, cwd: Path) -> Path:
    """`go mod download` one module version (verified by go) and return its zip's path."""
    out = subprocess.run(
        [go, "mod", "download", "-json", f"{module}@v{version}"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"go mod download {module}@v{version} failed:\n{out.stdout}{out.stderr}")
    return Path(json.loads(out.stdout)["Zip"])


def _close(schema: Any) -> None:
    """Reject unknown fields: every object schema with properties gets additionalProperties false."""
    if isinstance(schema, dict):
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        for value in schema.values():
            _close(value)
    elif isinstance(schema, list):
        for item in schema:
            _close(item)


def _scalar(*types: str, string_pattern: str | None = None) -> dict[str, Any]:
    """What the API server decodes into an IntOrString or a Quantity: a number or a string."""
    text: dict[str, Any] = {"type": "string", **({"pattern": string_pattern} if string_pattern else {})}
    return {"anyOf": [*({"type": t} for t in types), text]}


@dataclass
class Schemas:
    definitions: dict[str, Any]
    # (apiVersion, kind) -> a validator for the whole object
    validators: dict[tuple[str, str], Any] = field(default_factory=dict)

    @classmethod
    def load(cls, kubernetes_zip: Path, kubernetes_version: str, operator_zip: Path | None = None) -> Schemas:
        with zipfile.ZipFile(kubernetes_zip) as archive:
            spec = json.loads(archive.read(f"k8s.io/kubernetes@v{kubernetes_version}/{SWAGGER}"))
        definitions = spec["definitions"]
        definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = _scalar("integer")
        definitions["io.k8s.apimachinery.pkg.api.resource.Quantity"] = _scalar(
            "number", string_pattern=QUANTITY
        )
        _close(definitions)
        schemas = cls(definitions)
        for name, definition in definitions.items():
            for gvk in definition.get("x-kubernetes-group-version-kind", []):
                api_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
                root = {"$ref": f"#/definitions/{name}", "definitions": definitions}
                schemas.validators[(api_version, gvk["kind"])] = Draft4Validator(root)
        if operator_zip is not None:
            schemas._add_crds(operator_zip)
        return schemas

    def _add_crds(self, operator_zip: Path) -> None:
        with zipfile.ZipFile(operator_zip) as archive:
            names = [n for n in archive.namelist() if f"/{OPERATOR_CRDS}/" in n and n.endswith(".yaml")]
            for name in names:
                crd = yaml.load(archive.read(name), Loader=_CRDLoader)
                group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
                for version in crd["spec"]["versions"]:
                    schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                    # metadata is the API server's ObjectMeta, whatever the CRD says
                    schema.setdefault("properties", {})["metadata"] = {
                        "$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
                    }
                    _close(schema)
                    schema["definitions"] = self.definitions
                    self.validators[(f"{group}/{version['name']}", kind)] = Draft7Validator(schema)

    def errors(self, obj: dict[str, Any]) -> list[str]:
        """Every reason the API server of the pinned version would refuse `obj`; empty when none."""
        api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
        where = f"{kind} {obj.get('metadata', {}).get('name', '?')}"
        validator = self.validators.get((api_version, kind))
        if validator is None:
            return [f"{where}: {api_version} {kind} is not served by this Kubernetes version"]
        found = [
            f"{where}: {'.'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
            for error in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
        ]
        return found + [f"{where}: {problem}" for problem in _name_problems(obj)]


def _name_problems(obj: dict[str, Any]) -> Iterator[str]:
    metadata = obj.get("metadata", {})
    name = metadata.get("name", "")
    if obj.get("kind") in {"Service", "StatefulSet"}:
        # Services and StatefulSets' pods' hostnames: DNS labels
        if not (DNS1035_LABEL.match(name) and len(name) <= 63):
            yield f"name {name!r} is not a DNS-1035 label of at most 63 characters"
    elif not (DNS1123_SUBDOMAIN.match(name) and len(name) <= 253):
        yield f"name {name!r} is not a DNS-1123 subdomain"
    for key, value in (metadata.get("labels") or {}).items():
        if not (isinstance(value, str) and LABEL_VALUE.match(value) and len(value) <= 63):
            yield f"label {key}={value!r} is not a valid label value"
