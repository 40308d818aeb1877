"""Where each region's Workspace APP API lives. Pure."""

from __future__ import annotations

from .errors import InvalidArgument

__all__ = ["REGIONS", "endpoint_for"]

# Mainland China regions serve Workspace APP under the AppStream host name.
_APPSTREAM = ("cn-north-4", "cn-north-9", "cn-east-3", "cn-south-1", "cn-southwest-2")
_WORKSPACE = (
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "af-south-1",
    "af-north-1",
    "la-south-2",
    "la-north-2",
    "sa-brazil-1",
    "me-east-1",
    "tr-west-1",
    "cn-east-5",
    "cn-north-11",
)

REGIONS: dict[str, str] = {
    **{region: f"https://appstream.{region}.myhuaweicloud.com" for region in _APPSTREAM},
    **{region: f"https://workspace.{region}.myhuaweicloud.com" for region in _WORKSPACE},
}
"""Each known region's endpoint."""


def endpoint_for(region: str) -> str:
    """Return a region's endpoint; raises :class:`InvalidArgument` listing the known ones."""
    endpoint = REGIONS.get(region.strip().lower()) if isinstance(region, str) else None
    if endpoint is None:
        raise InvalidArgument(
            f"unknown region {region!r}; known regions: {', '.join(sorted(REGIONS))} "
            "(or pass endpoint= for another)"
        )
    return endpoint
