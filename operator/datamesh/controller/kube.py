"""The operator's few calls to the Kubernetes API, on plain dictionaries.

The ``kubernetes`` client's generic ``call_api`` is used instead of its typed classes:
children are dictionaries from ``provisioning``, and comparing dictionaries is what
makes "no write when nothing changed" cheap. Every write is counted in metrics.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from datamesh.api.constants import GROUP, VERSION
from datamesh.controller import metrics


@dataclass(frozen=True)
class Kind:
    prefix: str  # "/api/v1" or "/apis/<group>/<version>"
    plural: str
    namespaced: bool = True

    def path(self, namespace: str, name: str | None = None, sub: str | None = None) -> str:
        scope = f"/namespaces/{namespace}" if self.namespaced else ""
        out = f"{self.prefix}{scope}/{self.plural}"
        if name:
            out += f"/{name}"
        if sub:
            out += f"/{sub}"
        return out


KINDS = {
    "PersistentVolumeClaim": Kind("/api/v1", "persistentvolumeclaims"),
    "ConfigMap": Kind("/api/v1", "configmaps"),
    "ServiceAccount": Kind("/api/v1", "serviceaccounts"),
    "Event": Kind("/api/v1", "events"),
    # Written (pipelines' warehouse logins), never read: no get, list or watch.
    "Secret": Kind("/api/v1", "secrets"),
    "CronJob": Kind("/apis/batch/v1", "cronjobs"),
    "Job": Kind("/apis/batch/v1", "jobs"),
    "Pod": Kind("/api/v1", "pods"),
    "Role": Kind("/apis/rbac.authorization.k8s.io/v1", "roles"),
    "RoleBinding": Kind("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
    "DataProduct": Kind(f"/apis/{GROUP}/{VERSION}", "dataproducts"),
    "GovernancePolicy": Kind(f"/apis/{GROUP}/{VERSION}", "governancepolicies"),
    "ValidatingAdmissionPolicy": Kind(
        "/apis/admissionregistration.k8s.io/v1", "validatingadmissionpolicies", namespaced=False
    ),
    "ValidatingAdmissionPolicyBinding": Kind(
        "/apis/admissionregistration.k8s.io/v1",
        "validatingadmissionpolicybindings",
        namespaced=False,
    ),
}

MERGE_PATCH = "application/merge-patch+json"
REQUEST_TIMEOUT_S = 30


def is_status(exc: Exception, *codes: int) -> bool:
    return isinstance(exc, ApiException) and exc.status in codes


def api_message(exc: Exception) -> str:
    """The apiserver's own words, not the client's HTTP dump."""
    if isinstance(exc, ApiException):
        try:
            return str(json.loads(exc.body or "{}").get("message") or exc.reason)
        except ValueError:
            return str(exc.reason)
    return str(exc)


class Cluster:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api

    @classmethod
    def connect(cls, pool_size: int = 16, kubeconfig: str | None = None) -> Cluster:
        """In-cluster credentials when running in a pod, else the kubeconfig (the one
        given, or $KUBECONFIG, or ~/.kube/config, read when called)."""
        configuration = client.Configuration()
        try:
            if kubeconfig:
                raise config.ConfigException("a kubeconfig was given")
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except config.ConfigException:
            path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or None
            config.load_kube_config(config_file=path, client_configuration=configuration)  # type: ignore[no-untyped-call]
        configuration.connection_pool_maxsize = pool_size
        return cls(client.ApiClient(configuration))

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        query: list[tuple[str, str]] | None = None,
    ) -> Any:
        # The client builds the URL and authentication headers; the body is ours to encode.
        # Its own path re-walks every body to "sanitize" it, which costs more CPU than the
        # request itself for a CronJob, so the connection pool is used directly.
        method, url, headers, _, _ = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query,
            auth_settings=["BearerToken"],
            header_params={"Accept": "application/json", "Content-Type": content_type},
        )
        data = json.dumps(body).encode() if body is not None else None
        response = self.api.rest_client.pool_manager.request(
            method,
            url,
            body=data,
            headers=headers,
            timeout=REQUEST_TIMEOUT_S,
            preload_content=True,
        )
        text = response.data.decode("utf-8") if response.data else ""
        if not 200 <= response.status <= 299:
            raise ApiException(status=response.status, reason=response.reason, body=text)
        return json.loads(text) if text else {}

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(self._call("GET", KINDS[kind].path(namespace, name)))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, kind: str, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        query = [("labelSelector", label_selector)]
        return list(self._call("GET", KINDS[kind].path(namespace), query=query)["items"])

    def create(self, kind: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        metrics.API_WRITES.labels("create", kind).inc()
        return dict(self._call("POST", KINDS[kind].path(namespace), body))

    def patch(
        self, kind: str, namespace: str, name: str, patch: dict[str, Any], sub: str | None = None
    ) -> dict[str, Any]:
        metrics.API_WRITES.labels("patch" if not sub else f"patch-{sub}", kind).inc()
        return dict(self._call("PATCH", KINDS[kind].path(namespace, name, sub), patch, MERGE_PATCH))

    def replace(self, kind: str, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        metrics.API_WRITES.labels("replace", kind).inc()
        return dict(self._call("PUT", KINDS[kind].path(namespace, name), body))

    def delete(self, kind: str, namespace: str, name: str) -> None:
        metrics.API_WRITES.labels("delete", kind).inc()
        try:
            self._call(
                "DELETE", KINDS[kind].path(namespace, name), {"propagationPolicy": "Background"}
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
