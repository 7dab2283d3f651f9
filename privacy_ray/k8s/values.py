"""Values of the manifest generator: everything environment-specific about a KubeRay deployment.

One pydantic model, loadable from ``--values FILE`` (YAML), with CLI flags on top. Unknown keys
are errors, and cross-field rules (a worker group on an unknown node group, a pod that cannot fit
its instance type, a malformed image reference) are checked here, before anything is rendered or
written. Values do no I/O: :func:`load_values` is the only function that reads a file.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from privacy_ray.errors import ConfigError

#: Ray version baked into the image (pyproject pins ray==2.60.0); rayVersion must equal it.
RAY_VERSION = "2.60.0"
#: KubeRay operator release the manifests are written and validated for.
KUBERAY_VERSION = "1.7.0"


def _package_version() -> str:
    try:
        return metadata.version("privacy-ray")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.0.0"


DEFAULT_TAG = _package_version()

# [registry[:port]/]path[:tag][@digest], after the Docker reference grammar.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_RE = re.compile(
    r"^(?P<repo>(?:(?:[a-zA-Z0-9-]+\.)*[a-zA-Z0-9-]+(?::[0-9]+)?/)?"
    rf"{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUANTITY_CPU = re.compile(r"^([0-9]+)(m)?$")
_QUANTITY_MEM = re.compile(r"^([0-9]+)(Mi|Gi)$")
_IAM_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}$")

#: vCPUs, memory (GiB) and NVIDIA GPUs of instance types we check pod sizes against.
#: Unknown types are accepted without a fit check.
INSTANCE_TYPES: dict[str, tuple[int, int, int]] = {
    "m5.xlarge": (4, 16, 0),
    "m5.2xlarge": (8, 32, 0),
    "m5.4xlarge": (16, 64, 0),
    "m6i.xlarge": (4, 16, 0),
    "m6i.2xlarge": (8, 32, 0),
    "m6i.4xlarge": (16, 64, 0),
    "m7i.2xlarge": (8, 32, 0),
    "m7i.4xlarge": (16, 64, 0),
    "c6i.2xlarge": (8, 16, 0),
    "r6i.2xlarge": (8, 64, 0),
    "g4dn.xlarge": (4, 16, 1),
    "g4dn.2xlarge": (8, 32, 1),
    "g5.xlarge": (4, 16, 1),
    "g5.2xlarge": (8, 32, 1),
    "g5.4xlarge": (16, 64, 1),
    "g5.12xlarge": (48, 192, 4),
    "g6.xlarge": (4, 16, 1),
    "g6.2xlarge": (8, 32, 1),
    "g6.4xlarge": (16, 64, 1),
    "p4d.24xlarge": (96, 1152, 8),
}
#: Share of an instance's memory a pod may ask for; the rest is kubelet, system and DaemonSets.
MEMORY_HEADROOM = 0.8
#: vCPUs kept free on a node for the kubelet, system daemons and DaemonSets.
CPU_HEADROOM = 1


class _Values(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def parse_cpu(quantity: str) -> float:
    """CPU quantity (``"6"``, ``"500m"``) as cores."""
    m = _QUANTITY_CPU.match(quantity)
    if not m:
        msg = f"invalid CPU quantity {quantity!r}; use cores like \"6\" or millicores \"500m\""
        raise ValueError(msg)
    return int(m.group(1)) / (1000 if m.group(2) else 1)


def parse_memory_gib(quantity: str) -> float:
    """Memory quantity (``"24Gi"``, ``"512Mi"``) as GiB."""
    m = _QUANTITY_MEM.match(quantity)
    if not m:
        msg = f"invalid memory quantity {quantity!r}; use \"24Gi\" or \"512Mi\""
        raise ValueError(msg)
    return int(m.group(1)) / (1024 if m.group(2) == "Mi" else 1)


class Taint(_Values):
    key: str = Field(description="Taint key, e.g. nvidia.com/gpu.")
    value: str = Field("", description="Taint value.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = Field(
        "NoSchedule", description="Taint effect."
    )


class NodeGroup(_Values):
    """One EKS managed node group (rendered into the eksctl ClusterConfig)."""

    instance_types: list[str] = Field(min_length=1, description="EC2 instance types.")
    gpu: bool = Field(False, description="GPU node group (Bottlerocket NVIDIA AMI, tainted).")
    min_size: int = Field(0, ge=0, description="Fewest nodes (0 lets the group scale to zero).")
    max_size: int = Field(4, ge=1, description="Most nodes.")
    desired_size: int = Field(1, ge=0, description="Nodes at creation.")
    volume_size_gb: int = Field(100, ge=20, description="Root volume size (images are large).")
    labels: dict[str, str] = Field(default_factory=dict, description="Extra node labels.")
    taints: list[Taint] = Field(default_factory=list, description="Node taints.")

    @model_validator(mode="after")
    def _sizes(self) -> NodeGroup:
        if not self.min_size <= self.desired_size <= self.max_size:
            msg = (f"node group sizes must satisfy min_size <= desired_size <= max_size, got "
                   f"{self.min_size} <= {self.desired_size} <= {self.max_size}")
            raise ValueError(msg)
        return self


def _default_node_groups() -> dict[str, NodeGroup]:
    return {
        "cpu-workers": NodeGroup(
            instance_types=["m5.2xlarge"], min_size=1, desired_size=2, max_size=6,
            labels={"privacy-ray/node-type": "cpu"},
        ),
        "gpu-workers": NodeGroup(
            instance_types=["g5.2xlarge"], gpu=True, min_size=0, desired_size=0, max_size=2,
            labels={"privacy-ray/node-type": "gpu"},
            taints=[
                Taint(key="nvidia.com/gpu", value="true", effect="NoSchedule"),
                Taint(key="ray.io/node-type", value="worker", effect="NoSchedule"),
            ],
        ),
    }


class PodSize(_Values):
    """Resources of one Ray container. Requests equal limits (KubeRay gives Ray the limits)."""

    node_group: str = Field("cpu-workers", description="Node group the pods are scheduled on.")
    cpu: str = Field("2", description="CPU request and limit, e.g. \"6\" or \"1500m\".")
    memory: str = Field("8Gi", description="Memory request and limit, e.g. \"24Gi\".")

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, v: str) -> str:
        if parse_cpu(v) <= 0:
            raise ValueError("cpu must be positive")
        return v

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: str) -> str:
        if parse_memory_gib(v) <= 0:
            raise ValueError("memory must be positive")
        return v


class WorkerGroup(PodSize):
    """A Ray worker group: pod size plus the autoscaler's bounds."""

    min_replicas: int = Field(0, ge=0, description="Fewest worker pods.")
    max_replicas: int = Field(4, ge=0, description="Most worker pods.")
    gpus: int = Field(0, ge=0, description="nvidia.com/gpu per pod (request = limit).")
    idle_timeout_s: int = Field(300, ge=0, description="Idle seconds before scale-down.")

    @model_validator(mode="after")
    def _bounds(self) -> WorkerGroup:
        if self.min_replicas > self.max_replicas:
            msg = (f"min_replicas ({self.min_replicas}) must not exceed max_replicas "
                   f"({self.max_replicas})")
            raise ValueError(msg)
        return self


class StorageValues(_Values):
    """Shared volumes (EFS, ReadWriteMany) mounted into every Ray pod."""

    storage_class: str = Field("efs-sc", description="StorageClass of the volumes (EFS).")
    access_mode: Literal["ReadWriteMany", "ReadWriteOnce"] = Field(
        "ReadWriteMany", description="RWX: head and workers share the volumes."
    )
    outputs_size: str = Field("10Gi", description="Run folders (pipeline.output_dir).")
    logs_size: str = Field("5Gi", description="Application logs, one sub-folder per pod.")
    checkpoints_size: str = Field("5Gi", description="Checkpoints of long runs.")
    store_size: str = Field("20Gi", description="The vector store (store.path).")

    @field_validator("outputs_size", "logs_size", "checkpoints_size", "store_size")
    @classmethod
    def _size(cls, v: str) -> str:
        parse_memory_gib(v)
        return v


class SecretRef(_Values):
    """A Secret the pods read one key of, as an environment variable. Never a value."""

    secret: str = Field(description="Secret name (created by deploy/deploy-eks.sh).")
    key: str = Field(description="Key inside the Secret.")
    env: str = Field(description="Environment variable the value is exposed as.")

    @field_validator("env")
    @classmethod
    def _env_name(cls, v: str) -> str:
        if not re.match(r"^[A-Z_][A-Z0-9_]*$", v):
            raise ValueError(f"environment variable name {v!r} must be UPPER_SNAKE_CASE")
        return v


def _default_secrets() -> list[SecretRef]:
    return [
        SecretRef(secret="privacy-ray-api-tokens", key="api-tokens", env="PRIVACY_RAY_API_TOKENS"),
        SecretRef(secret="privacy-ray-hmac", key="hmac-key", env="PRIVACY_RAY_HMAC_KEY"),
    ]


def _ray_name(v: str, max_len: int, what: str) -> str:
    """KubeRay names: DNS-1035 labels with per-kind length limits (operator validation)."""
    if not _DNS1035.match(v) or len(v) > max_len:
        msg = (f"{what} {v!r} must be a DNS-1035 label (lowercase letters, digits, '-', starting "
               f"with a letter) of at most {max_len} characters")
        raise ValueError(msg)
    return v


class JobValues(_Values):
    """The RayJob for the main pipeline (``privacy-ray run``)."""

    name: str = Field("privacy-ray-run", description="RayJob name; deploy-eks.sh appends a "
                      "16-character run suffix (KubeRay limit 47).")
    input: str | None = Field(
        None, description="--input of `privacy-ray run` (s3:// or a mounted path); empty: "
        "the synthetic generator."
    )
    n_messages: int | None = Field(None, ge=1, description="--n for synthetic input.")
    active_deadline_s: int = Field(4 * 3600, ge=1, description="Hard limit on the job's run time.")
    ttl_after_finished_s: int = Field(600, ge=0, description="Cluster kept this long after.")
    backoff_limit: int = Field(1, ge=0, description="Retries; each retry is a new RayCluster.")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _ray_name(v, 47 - 16, "job.name")


class CronValues(_Values):
    """The RayCronJob for the daily conversations pipeline."""

    enabled: bool = Field(True, description="Render the RayCronJob (needs the RayCronJob gate).")
    name: str = Field("privacy-ray-conversations", description="RayCronJob name (<= 36 chars).")
    schedule: str = Field("0 2 * * *", description="Cron schedule.")
    time_zone: str = Field("UTC", description="Time zone of the schedule.")
    input: str = Field(
        "s3://privacy-ray-data/conversations/", description="--input of the conversations job."
    )
    active_deadline_s: int = Field(2 * 3600, ge=1, description="Hard limit on one run.")
    ttl_after_finished_s: int = Field(600, ge=0, description="Cluster kept this long after.")
    backoff_limit: int = Field(1, ge=0, description="Retries of one run.")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _ray_name(v, 36, "cron.name")

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: str) -> str:
        if len(v.split()) != 5:
            raise ValueError(f"schedule {v!r} must have five cron fields, e.g. '0 2 * * *'")
        return v


class ServeValues(_Values):
    """The RayService. Replica counts live here until ``Settings.serve`` declares them."""

    name: str = Field("privacy-ray-serve", description="RayService name (<= 47 chars).")
    app_name: str = Field("privacy-ray", description="Serve application name.")
    route_prefix: str = Field("/", description="HTTP route prefix of the application.")
    num_replicas: int = Field(2, ge=1, description="Replicas of each app deployment (HA: >= 2).")
    workers: WorkerGroup = Field(
        default_factory=lambda: WorkerGroup(cpu="4", memory="8Gi", min_replicas=2, max_replicas=4),
        description="Worker pods that run the Serve replicas.",
    )
    allowed_namespaces: list[str] = Field(
        default_factory=lambda: ["privacy-ray-clients"],
        description="Namespaces whose pods may call the Serve port.",
    )
    pdb_min_available: int = Field(
        1, ge=0, description="Serve worker pods kept during drains (0: no protection)."
    )
    upgrade_strategy: Literal["NewCluster", "None"] = Field(
        "NewCluster", description="NewCluster: zero-downtime switch (needs room for two clusters)."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _ray_name(v, 47, "serve.name")


class ManifestValues(_Values):
    """Everything the generator needs that is not in the application config."""

    image: str = Field(f"privacy-ray:{DEFAULT_TAG}", description="Ray image (CPU torch).")
    gpu_image: str | None = Field(
        None, description="Image of GPU workers (CUDA torch). Empty: '<image repo>-gpu:<tag>'."
    )
    image_pull_policy: Literal["IfNotPresent", "Always"] = Field("IfNotPresent")
    namespace: str = Field("data-pipeline", description="Namespace of every object.")
    cluster_name: str = Field("privacy-ray", description="RayCluster and EKS cluster name.")
    aws_region: str = Field("us-east-1", description="AWS region of the EKS cluster.")
    kubernetes_version: str = Field("1.33", description="EKS Kubernetes version.")
    data_bucket: str = Field("privacy-ray-data", description="S3 bucket the pods may read/write.")
    irsa_role_arn: str = Field(
        "arn:aws:iam::111122223333:role/privacy-ray-s3",
        description="IAM role for the pods' ServiceAccount (IRSA); deploy-eks.sh patches in "
        "the real account.",
    )
    service_account: str = Field("privacy-ray", description="ServiceAccount of the Ray pods.")
    operator_namespace: str = Field("kuberay-system", description="KubeRay operator namespace.")
    monitoring_namespaces: list[str] = Field(
        default_factory=lambda: ["monitoring"],
        description="Namespaces allowed to scrape Ray metrics (port 8080).",
    )
    gpu: bool = Field(True, description="Render GPU worker groups.")
    node_groups: dict[str, NodeGroup] = Field(default_factory=_default_node_groups)
    head: PodSize = Field(default_factory=lambda: PodSize(cpu="2", memory="8Gi"))
    cpu_workers: WorkerGroup = Field(
        default_factory=lambda: WorkerGroup(cpu="6", memory="24Gi", min_replicas=1, max_replicas=4)
    )
    gpu_workers: WorkerGroup = Field(
        default_factory=lambda: WorkerGroup(
            node_group="gpu-workers", cpu="6", memory="24Gi", gpus=1, min_replicas=0,
            max_replicas=2,
        )
    )
    ray_auth: Literal["token", "disabled"] = Field(
        "token", description="Ray token auth (authOptions.mode): the operator creates the token "
        "Secret; dashboard and job API clients need it."
    )
    autoscaler_idle_timeout_s: int = Field(60, ge=0, description="Default idle scale-down delay.")
    upscaling_mode: Literal["Default", "Aggressive", "Conservative"] = Field("Default")
    storage: StorageValues = Field(default_factory=StorageValues)
    secrets: list[SecretRef] = Field(default_factory=_default_secrets)
    job: JobValues = Field(default_factory=JobValues)
    cron: CronValues = Field(default_factory=CronValues)
    serve: ServeValues = Field(default_factory=ServeValues)

    @field_validator("image", "gpu_image")
    @classmethod
    def _image(cls, v: str | None) -> str | None:
        if v is None:
            return v
        m = _IMAGE_RE.match(v)
        if not m:
            msg = (f"malformed image reference {v!r}; expected [registry/]name:tag, e.g. "
                   "123456789012.dkr.ecr.us-east-1.amazonaws.com/privacy-ray:0.1.0")
            raise ValueError(msg)
        if not m.group("tag") and not m.group("digest"):
            raise ValueError(f"image {v!r} has no tag; pin a release tag or a digest")
        if m.group("tag") in ("latest", "nightly") and not m.group("digest"):
            raise ValueError(f"image {v!r} uses a moving tag; pin a release tag or a digest")
        return v

    @field_validator("cluster_name")
    @classmethod
    def _cluster_name(cls, v: str) -> str:
        return _ray_name(v, 53, "cluster_name")

    @field_validator("data_bucket")
    @classmethod
    def _bucket(cls, v: str) -> str:
        if not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", v):
            raise ValueError(f"data_bucket {v!r} is not a valid S3 bucket name")
        return v

    @field_validator("namespace", "operator_namespace", "service_account")
    @classmethod
    def _dns_label(cls, v: str) -> str:
        if not (_DNS1123_LABEL.match(v) and len(v) <= 63):
            raise ValueError(f"{v!r} must be a DNS-1123 label (lowercase letters, digits, '-')")
        return v

    @field_validator("monitoring_namespaces")
    @classmethod
    def _namespaces(cls, v: list[str]) -> list[str]:
        for ns in v:
            cls._dns_label(ns)
        return sorted(set(v))

    @field_validator("irsa_role_arn")
    @classmethod
    def _arn(cls, v: str) -> str:
        if not _IAM_ROLE_ARN.match(v):
            raise ValueError(f"{v!r} is not an IAM role ARN (arn:aws:iam::<12 digits>:role/<name>)")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> ManifestValues:
        for ns in self.serve.allowed_namespaces:
            self._dns_label(ns)
        groups: list[tuple[str, PodSize, int]] = [
            ("head", self.head, 0),
            ("cpu_workers", self.cpu_workers, self.cpu_workers.gpus),
            ("serve.workers", self.serve.workers, self.serve.workers.gpus),
        ]
        if self.gpu:
            groups.append(("gpu_workers", self.gpu_workers, self.gpu_workers.gpus))
        for where, pod, gpus in groups:
            ng = self.node_groups.get(pod.node_group)
            if ng is None:
                known = ", ".join(sorted(self.node_groups)) or "none"
                msg = (f"{where}.node_group {pod.node_group!r} is not a node group; "
                       f"known: {known}")
                raise ValueError(msg)
            if where == "head" and ng.gpu:
                raise ValueError(f"head.node_group {pod.node_group!r} is a GPU group; "
                                 "schedule the head on a CPU node group")
            if gpus and not ng.gpu:
                raise ValueError(f"{where} asks for {gpus} GPU(s) but node group "
                                 f"{pod.node_group!r} has gpu: false")
            _check_fit(where, pod, gpus, ng)
        pdb, serve_min = self.serve.pdb_min_available, self.serve.workers.min_replicas
        if pdb and pdb >= serve_min:
            msg = (f"serve.pdb_min_available ({pdb}) must be below serve.workers.min_replicas "
                   f"({serve_min}), or node drains block forever; use 0 to disable it")
            raise ValueError(msg)
        if self.gpu and self.gpu_workers.gpus < 1:
            raise ValueError("gpu_workers.gpus must be >= 1 when GPU workers are rendered; "
                             "use --no-gpu to drop them")
        if self.gpu and self.gpu_image is None and "@" in self.image:
            raise ValueError("image is pinned by digest; set gpu_image explicitly")
        return self

    def resolved_gpu_image(self) -> str:
        """The GPU image: ``gpu_image`` or the CPU image's repository with ``-gpu`` appended."""
        if self.gpu_image:
            return self.gpu_image
        m = _IMAGE_RE.match(self.image)
        assert m is not None  # validated in _image
        return f"{m.group('repo')}-gpu:{m.group('tag')}"


def _check_fit(where: str, pod: PodSize, gpus: int, ng: NodeGroup) -> None:
    """Reject a pod that cannot fit on the smallest known instance type of its node group."""
    known = [INSTANCE_TYPES[t] for t in ng.instance_types if t in INSTANCE_TYPES]
    if not known:
        return
    vcpus, mem_gib, n_gpus = min(known)
    cpu, mem = parse_cpu(pod.cpu), parse_memory_gib(pod.memory)
    if cpu > vcpus - CPU_HEADROOM:
        msg = (f"{where}.cpu {pod.cpu} does not fit node group {pod.node_group!r} "
               f"({vcpus} vCPUs, {CPU_HEADROOM} kept for the system); lower it or use a larger "
               "instance type")
        raise ValueError(msg)
    if mem > mem_gib * MEMORY_HEADROOM:
        msg = (f"{where}.memory {pod.memory} does not fit node group {pod.node_group!r} "
               f"({mem_gib} GiB, at most {int(mem_gib * MEMORY_HEADROOM)}Gi for one pod)")
        raise ValueError(msg)
    if gpus > n_gpus:
        raise ValueError(f"{where}.gpus {gpus} exceeds the {n_gpus} GPU(s) of node group "
                         f"{pod.node_group!r}")


def describe_validation_error(e: ValidationError, source: str) -> str:
    """One line naming the key, what is wrong and where it came from."""
    err = e.errors()[0]
    dotted = ".".join(str(p) for p in err["loc"]) or "(values)"
    if err["type"] == "extra_forbidden":
        msg = (f"unknown manifest value '{dotted}' in {source}; see privacy_ray.k8s.values."
               "ManifestValues for valid keys")
    else:
        text = str(err["msg"]).removeprefix("Value error, ")
        where = f"'{dotted}' " if err["loc"] else ""
        msg = f"invalid manifest value {where}in {source}: {text}"
    n_more = len(e.errors()) - 1
    return msg + (f" (+{n_more} more)" if n_more else "")


#: Mappings a values file replaces whole instead of merging into the defaults.
REPLACED_MAPPINGS = frozenset({"node_groups"})


def _merge(default: Any, override: Any, key: str = "") -> Any:
    """Sections merge key by key (``cpu_workers: {max_replicas: 9}`` keeps the default sizes);
    lists and :data:`REPLACED_MAPPINGS` are replaced."""
    if isinstance(default, dict) and isinstance(override, dict) and key not in REPLACED_MAPPINGS:
        merged = dict(default)
        for k, v in override.items():
            merged[k] = _merge(default.get(k), v, k) if k in default else v
        return merged
    return override


def build_values(data: dict[str, Any] | None = None, source: str = "values",
                 **overrides: Any) -> ManifestValues:
    """Validate ``data`` plus non-None ``overrides`` (flags win) into :class:`ManifestValues`.

    ``data`` is merged into the defaults section by section, so a values file only names what
    it changes.
    """
    user = dict(data or {})
    user.update({k: v for k, v in overrides.items() if v is not None})
    tree = _merge(ManifestValues().model_dump(exclude_none=True), user)
    try:
        return ManifestValues.model_validate(tree)
    except ValidationError as e:
        raise ConfigError(describe_validation_error(e, source)) from e


def load_values(path: str | None = None, **overrides: Any) -> ManifestValues:
    """Read ``--values FILE`` (YAML mapping) and apply CLI ``overrides`` on top."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path:
        p = Path(path)
        source = path
        if not p.is_file():
            raise ConfigError(f"values file {path} not found; pass an existing YAML file")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            raise ConfigError(f"values file {path}{where} is not valid YAML; fix the syntax") from e
        if loaded is not None and not isinstance(loaded, dict):
            msg = f"values file {path} must hold a mapping, not {type(loaded).__name__}"
            raise ConfigError(msg)
        data = loaded or {}
    if any(v is not None for v in overrides.values()):
        source = f"{source} and command-line flags" if path else "command-line flags"
    return build_values(data, source=source, **overrides)
