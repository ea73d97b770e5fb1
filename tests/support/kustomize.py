"""A deliberately small kustomize renderer, so deploy/k8s can be checked without the kustomize binary.

It implements exactly the subset deploy/k8s uses and refuses anything else (an unknown kustomization
field or patch operation raises, rather than being silently ignored):

* ``resources``: YAML files (multi-document) and directories holding a ``kustomization.yaml``;
* ``namespace``: set on every namespaced object (not on Namespaces or other cluster-scoped kinds);
* ``images``: ``name`` → ``newName`` / ``newTag`` / ``digest`` on containers and initContainers;
* ``replicas``: ``name`` → ``count`` on Deployments / StatefulSets / ReplicaSets;
* ``patches``: ``path`` or inline ``patch``, with an optional ``target`` (kind, name, namespace,
  labelSelector of ``k=v`` terms). A patch that is a YAML list is JSON 6902 (add / replace / remove /
  test); otherwise it is a strategic merge patch: maps merge recursively, ``null`` deletes a key,
  lists of objects merge by the Kubernetes patch-merge key of the field (``name`` for containers,
  env, volumes...; ``mountPath`` for volumeMounts; ``containerPort`` for ports), other lists replace.

Order matches kustomize's for this subset: resources, then patches (in order), then images and
replicas, then the namespace.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

KNOWN_FIELDS = {"apiVersion", "kind", "namespace", "resources", "images", "replicas", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume",
                  "StorageClass", "PriorityClass", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"}
MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
    "volumes": "name", "imagePullSecrets": "name", "volumeMounts": "mountPath", "ports": "containerPort",
}
POD_SPEC_PATHS = {
    "Deployment": ("spec", "template", "spec"), "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"), "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"), "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "Pod": ("spec",),
}


class KustomizeError(ValueError):
    """The kustomization uses something this renderer does not implement, or a patch does not apply."""


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def render(directory: Path | str) -> list[dict[str, Any]]:
    """The objects ``kustomize build directory`` would produce (for the supported subset)."""
    directory = Path(directory)
    kfile = directory / "kustomization.yaml"
    if not kfile.is_file():
        raise KustomizeError(f"{directory} has no kustomization.yaml")
    k = yaml.safe_load(kfile.read_text()) or {}
    unknown = set(k) - KNOWN_FIELDS
    if unknown:
        raise KustomizeError(f"{kfile}: unsupported kustomization fields {sorted(unknown)}")

    objects: list[dict[str, Any]] = []
    for entry in k.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            objects.extend(render(path))
        elif path.is_file():
            objects.extend(copy.deepcopy(load_yaml_documents(path)))
        else:
            raise KustomizeError(f"{kfile}: resource {entry!r} not found")
    _check_unique(objects, kfile)

    for patch in k.get("patches", []):
        _apply_patch(objects, patch, directory)
    for image in k.get("images", []):
        _apply_image(objects, image)
    for rep in k.get("replicas", []):
        hits = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet", "ReplicaSet")
                and o["metadata"]["name"] == rep["name"]]
        if not hits:
            raise KustomizeError(f"replicas: no workload named {rep['name']!r}")
        for o in hits:
            o["spec"]["replicas"] = rep["count"]
    if "namespace" in k:
        for o in objects:
            if o["kind"] not in CLUSTER_SCOPED:
                o["metadata"]["namespace"] = k["namespace"]
    return objects


def _check_unique(objects: list[dict[str, Any]], where: Path) -> None:
    seen: set[tuple[str, str, str]] = set()
    for o in objects:
        ident = (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])
        if ident in seen:
            raise KustomizeError(f"{where}: duplicate object {ident}")
        seen.add(ident)


def in_namespace(objects: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """The objects of one namespace: those namespaced in it, and the Namespace object itself."""
    return [o for o in objects if (o["metadata"]["name"] if o["kind"] == "Namespace"
                                   else o["metadata"].get("namespace")) == namespace]


# ------------------------------------------------------------------ patches


def _apply_patch(objects: list[dict[str, Any]], spec: dict[str, Any], directory: Path) -> None:
    unknown = set(spec) - {"path", "patch", "target"}
    if unknown:
        raise KustomizeError(f"patch {spec}: unsupported fields {sorted(unknown)}")
    if "path" in spec:
        body = yaml.safe_load((directory / spec["path"]).read_text())
    elif "patch" in spec:
        body = yaml.safe_load(spec["patch"])
    else:
        raise KustomizeError(f"patch {spec}: needs path or patch")
    target = spec.get("target")
    if isinstance(body, list):
        if not target:
            raise KustomizeError(f"JSON 6902 patch {spec} needs a target")
        hits = [o for o in objects if _selected(o, target)]
        if not hits:
            raise KustomizeError(f"patch {spec}: target matches nothing")
        for o in hits:
            _json6902(o, body)
        return
    if not isinstance(body, dict):
        raise KustomizeError(f"patch {spec}: not a mapping or a list")
    if target:
        hits = [o for o in objects if _selected(o, target)]
    else:
        hits = [o for o in objects if o["kind"] == body.get("kind")
                and o["metadata"]["name"] == body.get("metadata", {}).get("name")]
    if not hits:
        raise KustomizeError(f"patch {spec}: matches nothing")
    if target:  # with a target, kustomize ignores the patch's own kind/name
        body = {k: v for k, v in body.items() if k not in ("apiVersion", "kind")}
        meta = {k: v for k, v in (body.pop("metadata", None) or {}).items() if k != "name"}
        if meta:
            body["metadata"] = meta
    for o in hits:
        merged = strategic_merge(o, body)
        o.clear()
        o.update(merged)


def _selected(obj: dict[str, Any], target: dict[str, Any]) -> bool:
    unknown = set(target) - {"kind", "name", "namespace", "labelSelector"}
    if unknown:
        raise KustomizeError(f"target {target}: unsupported fields {sorted(unknown)}")
    meta = obj.get("metadata", {})
    if "kind" in target and obj.get("kind") != target["kind"]:
        return False
    if "name" in target and meta.get("name") != target["name"]:
        return False
    if "namespace" in target and meta.get("namespace") != target["namespace"]:
        return False
    if "labelSelector" in target:
        labels = meta.get("labels", {}) or {}
        for term in str(target["labelSelector"]).split(","):
            if "=" not in term or "!=" in term:
                raise KustomizeError(f"labelSelector {term!r}: only k=v terms are supported")
            key, value = (s.strip() for s in term.split("=", 1))
            if labels.get(key) != value:
                return False
    return True


def strategic_merge(base: Any, patch: Any, field: str = "") -> Any:
    """Strategic merge of ``patch`` onto ``base`` (the subset described in the module docstring)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        if any(str(k).startswith("$") for k in patch):
            raise KustomizeError(f"strategic-merge directives are not supported: {sorted(patch)}")
        out = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = strategic_merge(out[key], value, key)
            else:
                out[key] = copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list) and field in MERGE_KEYS:
        key = MERGE_KEYS[field]
        items: list[Any] = copy.deepcopy(base)
        for item in patch:
            if not isinstance(item, dict) or key not in item:
                raise KustomizeError(f"{field}: every patch item needs its merge key {key!r}")
            match = next((i for i, existing in enumerate(items) if existing.get(key) == item[key]), None)
            if match is None:
                items.append(copy.deepcopy(item))
            else:
                items[match] = strategic_merge(items[match], item, field)
        return items
    return copy.deepcopy(patch)


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise KustomizeError(f"JSON pointer {path!r} must start with /")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _json6902(obj: dict[str, Any], ops: list[dict[str, Any]]) -> None:
    for op in ops:
        kind = op.get("op")
        parts = _pointer(op["path"])
        parent: Any = obj
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1]
        if kind == "add":
            value = copy.deepcopy(op["value"])
            if isinstance(parent, list):
                if last == "-":
                    parent.append(value)
                else:
                    parent.insert(int(last), value)
            else:
                parent[last] = value
        elif kind == "replace":
            if isinstance(parent, list):
                parent[int(last)] = copy.deepcopy(op["value"])
            else:
                if last not in parent:
                    raise KustomizeError(f"replace {op['path']}: no such member")
                parent[last] = copy.deepcopy(op["value"])
        elif kind == "remove":
            if isinstance(parent, list):
                del parent[int(last)]
            else:
                del parent[last]
        elif kind == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent[last]
            if current != op["value"]:
                raise KustomizeError(f"test {op['path']}: {current!r} != {op['value']!r}")
        else:
            raise KustomizeError(f"JSON 6902 op {kind!r} is not supported")


# ------------------------------------------------------------------ images


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec inside a workload object, or None for kinds without one."""
    path = POD_SPEC_PATHS.get(obj.get("kind", ""))
    if path is None:
        return None
    node: Any = obj
    for part in path:
        node = node.get(part, {})
    return node


def _split_image(image: str) -> tuple[str, str]:
    """``repo[:tag][@digest]`` → (repo, rest) where a ':' inside a registry host:port is not a tag."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return (name[:colon], image[colon:]) if colon > slash else (name, image[len(name):])


def _apply_image(objects: list[dict[str, Any]], entry: dict[str, Any]) -> None:
    unknown = set(entry) - {"name", "newName", "newTag", "digest"}
    if unknown:
        raise KustomizeError(f"images entry {entry}: unsupported fields {sorted(unknown)}")
    hit = False
    for o in objects:
        spec = pod_spec(o)
        if spec is None:
            continue
        for c in [*spec.get("containers", []), *spec.get("initContainers", [])]:
            repo, rest = _split_image(c["image"])
            if repo != entry["name"]:
                continue
            hit = True
            new_repo = entry.get("newName", repo)
            if "digest" in entry:
                c["image"] = f"{new_repo}@{entry['digest']}"
            elif "newTag" in entry:
                c["image"] = f"{new_repo}:{entry['newTag']}"
            else:
                c["image"] = new_repo + rest
    if not hit:
        raise KustomizeError(f"images entry {entry['name']!r} matches no container")
