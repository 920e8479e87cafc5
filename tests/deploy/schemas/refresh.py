"""Re-vendor the JSON schemas that tests/deploy validates the deploy files against.

Run by hand (it downloads two wheels from PyPI with pip; the tests themselves never touch the network):

    python3 tests/deploy/schemas/refresh.py

- compose-spec.json: the Compose Specification schema as vendored by check-jsonschema.
- kubernetes/v<K8S>-strict/: the "local-strict" schemas shipped by kubernetes-validate for the kinds
  deploy/kubernetes uses, plus _definitions.json pruned to the definitions those kinds reach (the full
  file is 1.3 MB). Strict means additionalProperties: false, so a misspelled field fails.

fly.schema.json and railway.schema.json are written by hand (no offline schema exists for either);
see README.md beside this file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

CHECK_JSONSCHEMA = "0.39.0"
KUBERNETES_VALIDATE = "1.37.0"
K8S = "1.37.0"
KINDS = ["deployment-apps-v1", "service-v1", "configmap-v1", "secret-v1", "poddisruptionbudget-policy-v1",
         "statefulset-apps-v1"]
HERE = Path(__file__).resolve().parent


def download(spec: str, dest: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest), spec], check=True)
    name = spec.split("==")[0].replace("-", "_")
    return next(dest.glob(f"{name}-*.whl"))


def refs(node: Any) -> set[str]:
    """Names of every #/$defs/<name> that `node` refers to."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and "#/$defs/" in value:
                found.add(value.split("#/$defs/", 1)[1])
            else:
                found |= refs(value)
    elif isinstance(node, list):
        for item in node:
            found |= refs(item)
    return found


def prune(definitions: dict[str, Any], roots: list[dict[str, Any]]) -> dict[str, Any]:
    keep: set[str] = set()
    todo = set().union(*(refs(root) for root in roots))
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep.add(name)
        todo |= refs(definitions["$defs"][name]) - keep
    return {**definitions, "$defs": {name: definitions["$defs"][name] for name in sorted(keep)}}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with zipfile.ZipFile(download(f"check-jsonschema=={CHECK_JSONSCHEMA}", work)) as wheel:
            vendor = "check_jsonschema/builtin_schemas/vendor/"
            (HERE / "compose-spec.json").write_bytes(wheel.read(vendor + "compose-spec.json"))
            (HERE / "LICENSE.compose-spec").write_bytes(wheel.read(vendor + "licenses/LICENSE.compose-spec"))
        out = HERE / "kubernetes" / f"v{K8S}-strict"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        with zipfile.ZipFile(download(f"kubernetes-validate=={KUBERNETES_VALIDATE}", work)) as wheel:
            base = f"kubernetes_validate/kubernetes-json-schema/v{K8S}-local-strict/"
            kinds = {kind: json.loads(wheel.read(f"{base}{kind}.json")) for kind in KINDS}
            definitions = json.loads(wheel.read(base + "_definitions.json"))
            license_name = next(n for n in wheel.namelist() if n.endswith("LICENSE"))
            (HERE / "kubernetes" / "LICENSE.kubernetes-validate").write_bytes(wheel.read(license_name))
        for kind, schema in kinds.items():
            (out / f"{kind}.json").write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
        pruned = prune(definitions, list(kinds.values()))
        (out / "_definitions.json").write_text(json.dumps(pruned, indent=1, sort_keys=True) + "\n")
    print(f"compose-spec.json from check-jsonschema {CHECK_JSONSCHEMA}; kubernetes v{K8S} strict from "
          f"kubernetes-validate {KUBERNETES_VALIDATE}: {len(pruned['$defs'])} definitions kept")


if __name__ == "__main__":
    main()
