"""A small async Kubernetes client for what kopf does not do for us: server-side apply, status, Events.

It shares kopf's event loop and aiohttp, and avoids importing the (large) official client, which keeps
the operator's memory low.
"""

from __future__ import annotations

import json
import ssl
import tempfile
from dataclasses import dataclass
from typing import Any

import aiohttp

from tts_operator import FIELD_MANAGER, GROUP, PLURAL, VERSION
from tts_operator.credentials import Credentials

# kind -> (API prefix, plural). Static on purpose: no discovery round-trips for a handful of kinds.
RESOURCES: dict[str, tuple[str, str]] = {
    "ConfigMap": ("/api/v1", "configmaps"),
    "Service": ("/api/v1", "services"),
    "Event": ("/api/v1", "events"),
    "Deployment": ("/apis/apps/v1", "deployments"),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets"),
    "ScaledObject": ("/apis/keda.sh/v1alpha1", "scaledobjects"),
    "TTSService": (f"/apis/{GROUP}/{VERSION}", PLURAL),
}


class ApiError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message

    @property
    def namespace_gone(self) -> bool:
        """Nothing can be created in a namespace being deleted (or deleted); retrying is pointless."""
        terminating = self.status == 403 and "being terminated" in self.message
        return terminating or (self.status == 404 and self.message.startswith("namespaces "))


@dataclass(frozen=True)
class ApplyResult:
    kind: str
    name: str
    resource_version: str


def _ssl_context(creds: Credentials) -> ssl.SSLContext:
    context = ssl.create_default_context(
        cafile=creds.ca_path, cadata=creds.ca_data.decode() if creds.ca_data else None
    )
    if creds.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if creds.certificate_path or creds.certificate_data:
        if creds.certificate_data is not None and creds.private_key_data is not None:
            # ssl can only load client certificates from files.
            with tempfile.NamedTemporaryFile("wb") as cert, tempfile.NamedTemporaryFile("wb") as key:
                cert.write(creds.certificate_data)
                key.write(creds.private_key_data)
                cert.flush()
                key.flush()
                context.load_cert_chain(cert.name, key.name)
        else:
            context.load_cert_chain(str(creds.certificate_path), str(creds.private_key_path))
    return context


def object_path(kind: str, namespace: str, name: str | None = None) -> str:
    prefix, plural = RESOURCES[kind]
    path = f"{prefix}/namespaces/{namespace}/{plural}"
    return f"{path}/{name}" if name else path


class KubeClient:
    def __init__(self, creds: Credentials, timeout: float = 30) -> None:
        self._creds = creds
        self._session = aiohttp.ClientSession(
            base_url=creds.server,
            connector=aiohttp.TCPConnector(ssl=_ssl_context(creds), limit=32),
            timeout=aiohttp.ClientTimeout(total=timeout),
        )

    async def close(self) -> None:
        await self._session.close()

    async def _request(
        self, method: str, path: str, body: Any, content_type: str, params: dict[str, str]
    ) -> Any:
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        token = self._creds.bearer_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        async with self._session.request(
            method, path, data=json.dumps(body), headers=headers, params=params
        ) as resp:
            text = await resp.text()
            if resp.status >= 400:
                try:
                    message = json.loads(text).get("message", text)
                except ValueError:
                    message = text
                raise ApiError(resp.status, message)
            return json.loads(text) if text else None

    async def apply(self, manifest: dict[str, Any]) -> ApplyResult:
        """Server-side apply under our one field manager; `force` takes fields back from hand edits."""
        meta = manifest["metadata"]
        path = object_path(manifest["kind"], meta["namespace"], meta["name"])
        params = {"fieldManager": FIELD_MANAGER, "force": "true", "fieldValidation": "Strict"}
        result = await self._request("PATCH", path, manifest, "application/apply-patch+yaml", params)
        return ApplyResult(manifest["kind"], meta["name"], result["metadata"]["resourceVersion"])

    async def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        meta = manifest["metadata"]
        return await self._request(
            "POST", object_path(manifest["kind"], meta["namespace"]), manifest, "application/json", {}
        )

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        path = object_path("TTSService", namespace, name) + "/status"
        await self._request("PATCH", path, {"status": status}, "application/merge-patch+json", {})

    async def create_event(self, namespace: str, event: dict[str, Any]) -> None:
        await self._request("POST", object_path("Event", namespace), event, "application/json", {})

    async def serves(self, group_version: str, plural: str) -> bool:
        """Does the API server serve this resource (is its CRD installed)? Discovery, one GET."""
        try:
            found = await self._request("GET", f"/apis/{group_version}", None, "application/json", {})
        except ApiError as error:
            if error.status == 404:
                return False
            raise
        return any(r.get("name") == plural for r in (found or {}).get("resources", []))

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None if it does not exist."""
        try:
            path = object_path(kind, namespace, name)
            return await self._request("GET", path, None, "application/json", {})
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    async def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Delete in the background (children go via the garbage collector); False if it was already gone."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        try:
            await self._request("DELETE", object_path(kind, namespace, name), body, "application/json", {})
        except ApiError as error:
            if error.status == 404:
                return False
            raise
        return True
