#!/usr/bin/env bash
# Deploy privacy-ray to Amazon EKS with KubeRay.
#
#   1. (--create-cluster) eksctl create cluster -f deploy/eksctl-cluster.yaml
#   2. build the CPU and GPU images and push them to ECR (skipped when the tag exists)
#   3. install the KubeRay CRDs and operator (Helm, pinned) and the Cluster Autoscaler
#   4. create the Secrets (API token, HMAC key) without printing or overwriting them
#   5. apply kuberay/ with kustomize (ECR images, IRSA role, EFS StorageClass patched in)
#   6. wait for the RayCluster and RayService, (--run-job) start a pipeline run, print endpoints
#
# --dry-run prints every command instead of running it (secret values show as <redacted>).
# See deploy/EKS-DEPLOYMENT.md for prerequisites, costs and troubleshooting.
set -euo pipefail

KUBERAY_VERSION="1.7.0"
CLUSTER_AUTOSCALER_CHART_VERSION="9.38.0"
CLUSTER_AUTOSCALER_IMAGE_TAG="v1.33.1"
GPU_TORCH_VARIANT="cu128"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MANIFESTS="${REPO_ROOT}/kuberay"
EKSCTL_CONFIG="${REPO_ROOT}/deploy/eksctl-cluster.yaml"
OPERATOR_VALUES="${REPO_ROOT}/deploy/kuberay-operator-values.yaml"

CLUSTER_NAME="${CLUSTER_NAME:-privacy-ray}"
AWS_REGION="${AWS_REGION:-us-east-1}"
IMAGE_TAG="${IMAGE_TAG:-}"
EFS_FILE_SYSTEM_ID="${EFS_FILE_SYSTEM_ID:-}"
IRSA_ROLE_NAME="${IRSA_ROLE_NAME:-privacy-ray-s3}"
OPERATOR_NAMESPACE="kuberay-system"
RAYCLUSTER_NAME="privacy-ray"
RAYSERVICE_NAME="privacy-ray-serve"
SERVE_PORT="8000"
DRY_RUN=0
CREATE_CLUSTER=0
BUILD=1
GPU=1
RUN_JOB=0
WAIT_TIMEOUT="20m"

usage() {
  cat <<'USAGE'
Usage: deploy/deploy-eks.sh [options]

  --cluster NAME       EKS cluster name (default: privacy-ray, env CLUSTER_NAME)
  --region REGION      AWS region (default: us-east-1, env AWS_REGION)
  --tag TAG            image tag (default: the package version, env IMAGE_TAG)
  --efs-id FS_ID       EFS file system for the shared volumes (env EFS_FILE_SYSTEM_ID)
  --create-cluster     create the EKS cluster from deploy/eksctl-cluster.yaml first
  --skip-build         do not build or push images (they must already be in ECR)
  --no-gpu             do not build the GPU image
  --run-job            start one run of the main pipeline (kuberay/rayjob.yaml) at the end
  --dry-run            print every command instead of running it
  -h, --help           this help

Secrets come from the environment and are never printed: PRIVACY_RAY_API_TOKENS (required the
first time), PRIVACY_RAY_HMAC_KEY (generated the first time if unset; never rotated here).
USAGE
}

die() { echo "error: $*" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --cluster) CLUSTER_NAME="${2:?--cluster needs a value}"; shift 2 ;;
    --region) AWS_REGION="${2:?--region needs a value}"; shift 2 ;;
    --tag) IMAGE_TAG="${2:?--tag needs a value}"; shift 2 ;;
    --efs-id) EFS_FILE_SYSTEM_ID="${2:?--efs-id needs a value}"; shift 2 ;;
    --create-cluster) CREATE_CLUSTER=1; shift ;;
    --skip-build) BUILD=0; shift ;;
    --no-gpu) GPU=0; shift ;;
    --run-job) RUN_JOB=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
done

# ----------------------------------------------------------------------------- helpers

# Print a command (shell-quoted) and run it unless --dry-run.
run() {
  printf '+'
  printf ' %q' "$@"
  printf '\n'
  if [[ "${DRY_RUN}" -eq 0 ]]; then
    "$@"
  fi
}

# Create or update a one-key Secret from a value held in a variable. The value goes through a
# pipe from a shell builtin, so it never appears in a process's arguments or in this output.
apply_secret() {
  local name="$1" key="$2" value="$3"
  printf '+ kubectl -n %q create secret generic %q --from-file=%q=<redacted>' \
    "${NAMESPACE}" "${name}" "${key}"
  printf ' --dry-run=client -o yaml | kubectl apply -f -\n'
  if [[ "${DRY_RUN}" -eq 0 ]]; then
    printf '%s' "${value}" \
      | kubectl -n "${NAMESPACE}" create secret generic "${name}" \
          --from-file="${key}=/dev/stdin" --dry-run=client -o yaml \
      | kubectl apply -f -
  fi
}

secret_exists() {
  [[ "${DRY_RUN}" -eq 0 ]] && kubectl -n "${NAMESPACE}" get secret "$1" >/dev/null 2>&1
}

require() {
  local tool
  for tool in "$@"; do
    if ! command -v "${tool}" >/dev/null 2>&1; then
      if [[ "${DRY_RUN}" -eq 1 ]]; then
        echo "# note: ${tool} is not installed (needed for a real deploy)" >&2
      else
        die "${tool} is required; see deploy/EKS-DEPLOYMENT.md#prerequisites"
      fi
    fi
  done
}

# ----------------------------------------------------------------------------- settings

require aws kubectl helm docker python3
if [[ "${CREATE_CLUSTER}" -eq 1 ]]; then
  require eksctl
fi

[[ -f "${MANIFESTS}/kustomization.yaml" ]] \
  || die "${MANIFESTS}/kustomization.yaml missing; run: privacy-ray manifests --out kuberay/"
NAMESPACE="$(awk '/^metadata:/{m=1} m && /^  name:/{print $2; exit}' "${MANIFESTS}/namespace.yaml")"
[[ -n "${NAMESPACE}" ]] || die "cannot read the namespace from ${MANIFESTS}/namespace.yaml"

if [[ -z "${IMAGE_TAG}" ]]; then
  IMAGE_TAG="$(sed -n 's/^version = "\(.*\)"$/\1/p' "${REPO_ROOT}/pyproject.toml" | head -n 1)"
fi
[[ "${IMAGE_TAG}" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "invalid image tag '${IMAGE_TAG}'"

if [[ -z "${EFS_FILE_SYSTEM_ID}" ]]; then
  if [[ "${DRY_RUN}" -eq 1 ]]; then
    EFS_FILE_SYSTEM_ID="fs-EXAMPLE"
  else
    die "--efs-id (or EFS_FILE_SYSTEM_ID) is required; see deploy/EKS-DEPLOYMENT.md#storage"
  fi
fi
[[ "${EFS_FILE_SYSTEM_ID}" =~ ^fs-[0-9a-zA-Z]+$ ]] || die "invalid EFS id '${EFS_FILE_SYSTEM_ID}'"

if [[ "${DRY_RUN}" -eq 1 ]]; then
  AWS_ACCOUNT_ID="${AWS_ACCOUNT_ID:-123456789012}"
else
  AWS_ACCOUNT_ID="${AWS_ACCOUNT_ID:-$(aws sts get-caller-identity --query Account --output text)}"
fi
REGISTRY="${AWS_ACCOUNT_ID}.dkr.ecr.${AWS_REGION}.amazonaws.com"
IMAGE="${REGISTRY}/privacy-ray:${IMAGE_TAG}"
GPU_IMAGE="${REGISTRY}/privacy-ray-gpu:${IMAGE_TAG}"
IRSA_ROLE_ARN="arn:aws:iam::${AWS_ACCOUNT_ID}:role/${IRSA_ROLE_NAME}"

WORK="$(mktemp -d)"
trap 'rm -rf "${WORK}"' EXIT

echo "# cluster ${CLUSTER_NAME} (${AWS_REGION}), namespace ${NAMESPACE}, image ${IMAGE}"

# ----------------------------------------------------------------------------- 1. cluster

if [[ "${CREATE_CLUSTER}" -eq 1 ]]; then
  run eksctl create cluster -f "${EKSCTL_CONFIG}"
fi
run aws eks update-kubeconfig --name "${CLUSTER_NAME}" --region "${AWS_REGION}"

# ----------------------------------------------------------------------------- 2. images

ensure_repository() {
  local repo="$1"
  if [[ "${DRY_RUN}" -eq 1 ]] \
      || ! aws ecr describe-repositories --repository-names "${repo}" \
             --region "${AWS_REGION}" >/dev/null 2>&1; then
    run aws ecr create-repository --repository-name "${repo}" --region "${AWS_REGION}" \
      --image-scanning-configuration scanOnPush=true --image-tag-mutability IMMUTABLE
  fi
}

image_exists() {
  [[ "${DRY_RUN}" -eq 0 ]] && aws ecr describe-images --repository-name "$1" \
    --image-ids "imageTag=${IMAGE_TAG}" --region "${AWS_REGION}" >/dev/null 2>&1
}

build_and_push() {
  local repo="$1" image="$2" variant="$3"
  ensure_repository "${repo}"
  if image_exists "${repo}"; then
    echo "# ${image} already in ECR (tags are immutable): not rebuilt"
    return
  fi
  run docker build --build-arg "TORCH_VARIANT=${variant}" --tag "${image}" "${REPO_ROOT}"
  run docker push "${image}"
}

if [[ "${BUILD}" -eq 1 ]]; then
  echo "+ aws ecr get-login-password --region ${AWS_REGION} | docker login --username AWS --password-stdin ${REGISTRY}"
  if [[ "${DRY_RUN}" -eq 0 ]]; then
    aws ecr get-login-password --region "${AWS_REGION}" \
      | docker login --username AWS --password-stdin "${REGISTRY}"
  fi
  build_and_push privacy-ray "${IMAGE}" cpu
  if [[ "${GPU}" -eq 1 ]]; then
    build_and_push privacy-ray-gpu "${GPU_IMAGE}" "${GPU_TORCH_VARIANT}"
  fi
fi

# ----------------------------------------------------------------------------- 3. operators

# Helm does not upgrade CRDs, so they are applied first (server-side: they are large).
run kubectl apply --server-side --force-conflicts \
  -k "github.com/ray-project/kuberay/ray-operator/config/crd?ref=v${KUBERAY_VERSION}"
run helm repo add kuberay https://ray-project.github.io/kuberay-helm/ --force-update
run helm repo add autoscaler https://kubernetes.github.io/autoscaler --force-update
run helm repo update kuberay autoscaler
run helm upgrade --install kuberay-operator kuberay/kuberay-operator \
  --version "${KUBERAY_VERSION}" --namespace "${OPERATOR_NAMESPACE}" --create-namespace \
  --values "${OPERATOR_VALUES}" --skip-crds --wait --timeout 10m
run helm upgrade --install cluster-autoscaler autoscaler/cluster-autoscaler \
  --version "${CLUSTER_AUTOSCALER_CHART_VERSION}" --namespace kube-system \
  --set "autoDiscovery.clusterName=${CLUSTER_NAME}" --set "awsRegion=${AWS_REGION}" \
  --set "image.tag=${CLUSTER_AUTOSCALER_IMAGE_TAG}" \
  --set rbac.serviceAccount.create=false --set rbac.serviceAccount.name=cluster-autoscaler \
  --set "extraArgs.balance-similar-node-groups=true" --set "extraArgs.expander=least-waste" \
  --wait --timeout 10m

# ----------------------------------------------------------------------------- 4. secrets

run kubectl apply -f "${MANIFESTS}/namespace.yaml"

if secret_exists privacy-ray-api-tokens && [[ -z "${PRIVACY_RAY_API_TOKENS:-}" ]]; then
  echo "# secret privacy-ray-api-tokens exists: kept"
else
  if [[ -z "${PRIVACY_RAY_API_TOKENS:-}" && "${DRY_RUN}" -eq 0 ]]; then
    die "set PRIVACY_RAY_API_TOKENS (the Serve API token) for the first deploy"
  fi
  apply_secret privacy-ray-api-tokens api-tokens "${PRIVACY_RAY_API_TOKENS:-}"
fi

# The HMAC key keys every user id in the vector store: rotating it orphans the store, so an
# existing Secret is never replaced here.
if secret_exists privacy-ray-hmac; then
  echo "# secret privacy-ray-hmac exists: kept (rotation needs a store rebuild)"
else
  HMAC_KEY="${PRIVACY_RAY_HMAC_KEY:-}"
  if [[ -z "${HMAC_KEY}" && "${DRY_RUN}" -eq 0 ]]; then
    HMAC_KEY="$(openssl rand -hex 32)"
    echo "# generated a new HMAC key (back up the privacy-ray-hmac Secret)"
  fi
  apply_secret privacy-ray-hmac hmac-key "${HMAC_KEY}"
fi

# ----------------------------------------------------------------------------- 5. manifests

OVERLAY="${WORK}/overlay"
mkdir -p "${OVERLAY}"
MANIFESTS_REL="$(python3 -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' \
  "${MANIFESTS}" "${OVERLAY}")"

cat > "${OVERLAY}/storageclass.yaml" <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: efs-sc
provisioner: efs.csi.aws.com
parameters:
  provisioningMode: efs-ap
  fileSystemId: ${EFS_FILE_SYSTEM_ID}
  directoryPerms: "700"
  uid: "1000"
  gid: "1000"
  basePathNamespace: "false"
reclaimPolicy: Retain
volumeBindingMode: Immediate
EOF

write_images() {
  cat <<EOF
images:
- name: privacy-ray
  newName: ${REGISTRY}/privacy-ray
  newTag: "${IMAGE_TAG}"
- name: privacy-ray-gpu
  newName: ${REGISTRY}/privacy-ray-gpu
  newTag: "${IMAGE_TAG}"
EOF
}

{
  cat <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- ${MANIFESTS_REL}
- storageclass.yaml
EOF
  write_images
  cat <<EOF
patches:
- target:
    kind: ServiceAccount
    name: privacy-ray
  patch: |-
    - op: replace
      path: /metadata/annotations/eks.amazonaws.com~1role-arn
      value: ${IRSA_ROLE_ARN}
EOF
} > "${OVERLAY}/kustomization.yaml"

echo "# overlay ${OVERLAY}/kustomization.yaml:"
sed 's/^/#   /' "${OVERLAY}/kustomization.yaml"
run kubectl apply -k "${OVERLAY}"

# ----------------------------------------------------------------------------- 6. readiness

run kubectl -n "${NAMESPACE}" wait --for=condition=HeadPodReady \
  "raycluster/${RAYCLUSTER_NAME}" --timeout="${WAIT_TIMEOUT}"
run kubectl -n "${NAMESPACE}" wait --for=condition=Ready \
  "rayservice/${RAYSERVICE_NAME}" --timeout="${WAIT_TIMEOUT}"

if [[ "${RUN_JOB}" -eq 1 ]]; then
  JOB="${WORK}/job"
  mkdir -p "${JOB}"
  cp "${MANIFESTS}/rayjob.yaml" "${JOB}/rayjob.yaml"
  {
    cat <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- rayjob.yaml
nameSuffix: -$(date -u +%Y%m%dt%H%M%S)
EOF
    write_images
  } > "${JOB}/kustomization.yaml"
  run kubectl create -k "${JOB}"
fi

cat <<EOF

Endpoints (the dashboard is never exposed; use port-forward):
  Serve, in the cluster:  http://${RAYSERVICE_NAME}-serve-svc.${NAMESPACE}.svc:${SERVE_PORT}
  Serve, from here:       kubectl -n ${NAMESPACE} port-forward svc/${RAYSERVICE_NAME}-serve-svc ${SERVE_PORT}:${SERVE_PORT}
  Dashboard and job API:  kubectl -n ${NAMESPACE} port-forward svc/${RAYCLUSTER_NAME}-head-svc 8265:8265
  Submit a run:           privacy-ray submit run --address http://127.0.0.1:8265 --n 1000
  Jobs of the cluster:    kubectl -n ${NAMESPACE} get rayjobs,raycronjobs
EOF
