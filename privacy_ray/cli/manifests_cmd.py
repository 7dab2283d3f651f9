"""``privacy-ray manifests``: render the KubeRay manifests (and the eksctl config) for EKS."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from privacy_ray.cli._common import ConfigOption

MANIFESTS_HELP = """Render the KubeRay manifests for Amazon EKS into --out.

Writes a RayCluster (CPU head, CPU and GPU worker groups, autoscaler v2), a
RayJob for `privacy-ray run`, a RayCronJob for the daily conversations
pipeline, a RayService whose serveConfigV2 comes from the app config, and the
namespace, RBAC, ConfigMap, volumes, NetworkPolicies, PodDisruptionBudget and
kustomization.yaml. The output is byte-stable; values are checked before
anything is written. The app config is --config only (the environment and
./config.yaml are ignored, so a render is reproducible).

Examples:

  privacy-ray manifests --out kuberay/

  privacy-ray manifests --out kuberay/ --values deploy/values.prod.yaml --config prod.yaml

  privacy-ray manifests --out /tmp/k \\
      --image 123456789012.dkr.ecr.us-east-1.amazonaws.com/privacy-ray:0.1.0

  privacy-ray manifests --out kuberay/ --no-gpu --namespace data-pipeline-dev

  privacy-ray manifests --out kuberay/ --eksctl deploy/eksctl-cluster.yaml --check
"""


def register(app: typer.Typer) -> None:
    @app.command("manifests", help=MANIFESTS_HELP)
    def manifests(
        out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (kuberay/).")],
        image: Annotated[str | None, typer.Option(
            "--image", help="Ray image, [registry/]name:tag (values: image).")] = None,
        namespace: Annotated[str | None, typer.Option(
            "--namespace", "-n", help="Namespace of every object (values: namespace).")] = None,
        gpu: Annotated[bool | None, typer.Option(
            "--gpu/--no-gpu", help="Render GPU worker groups (values: gpu; default on).")] = None,
        values: Annotated[str | None, typer.Option(
            "--values", "-f", help="YAML file of generator values (ManifestValues).")] = None,
        config: ConfigOption = None,
        eksctl: Annotated[Path | None, typer.Option(
            "--eksctl", help="Also write the eksctl ClusterConfig to this file.")] = None,
        check: Annotated[bool, typer.Option(
            "--check", help="Write nothing; exit 1 if the files differ from a fresh render.")]
        = False,
    ) -> None:
        from privacy_ray.config import Settings, load_config
        from privacy_ray.k8s import (
            diff_files,
            load_values,
            render_eksctl_config,
            render_manifests,
            write_files,
        )

        vals = load_values(values, image=image, namespace=namespace, gpu=gpu)
        settings = load_config(config, environ={}).settings if config else Settings()
        files = render_manifests(settings, vals)
        eksctl_text = render_eksctl_config(vals) if eksctl else None
        # An eksctl file written into --out is ours but not part of the manifest set.
        keep = [eksctl.name] if eksctl and eksctl.resolve().parent == out.resolve() else []

        if check:
            stale = [str(out / n) for n in diff_files(out, files, keep)]
            if eksctl and (not eksctl.is_file() or eksctl.read_text(encoding="utf-8")
                           != eksctl_text):
                stale.append(str(eksctl))
            if stale:
                typer.echo(f"out of date: {', '.join(stale)}; run privacy-ray manifests "
                           f"--out {out}" + (f" --eksctl {eksctl}" if eksctl else ""), err=True)
                # SystemExit, not typer.Exit: the root app runs click with standalone_mode=False,
                # which turns typer.Exit into a return value.
                raise SystemExit(1)
            typer.echo(f"{out}: up to date ({len(files)} files)")
            return

        changed = write_files(out, files, keep)
        if eksctl and eksctl_text is not None:
            eksctl.parent.mkdir(parents=True, exist_ok=True)
            if not eksctl.is_file() or eksctl.read_text(encoding="utf-8") != eksctl_text:
                eksctl.write_text(eksctl_text, encoding="utf-8")
                changed.append(str(eksctl))
        summary = ", ".join(changed) if changed else "no changes"
        typer.echo(f"{out}: {len(files)} files ({summary})")
