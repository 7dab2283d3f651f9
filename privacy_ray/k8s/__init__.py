"""Running on Kubernetes: the KubeRay manifest generator and Ray job submission.

``render_manifests(settings, values)`` turns the app config and :class:`ManifestValues` into the
files of ``kuberay/``; :mod:`privacy_ray.k8s.jobs` submits and follows jobs through Ray's Job
Submission SDK. Nothing here imports Ray or a Kubernetes client at import time.
"""

from privacy_ray.k8s.render import (
    HEADER,
    cluster_settings,
    diff_files,
    render_eksctl_config,
    render_manifests,
    serve_config,
    write_files,
)
from privacy_ray.k8s.values import (
    KUBERAY_VERSION,
    RAY_VERSION,
    ManifestValues,
    build_values,
    load_values,
)

__all__ = [
    "HEADER",
    "KUBERAY_VERSION",
    "RAY_VERSION",
    "ManifestValues",
    "build_values",
    "cluster_settings",
    "diff_files",
    "load_values",
    "render_eksctl_config",
    "render_manifests",
    "serve_config",
    "write_files",
]
