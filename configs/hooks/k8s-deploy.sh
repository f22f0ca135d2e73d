#!/bin/sh
# Kubernetes deploy hook for scbe-agent: points the deployment named in the agent config
# (SCBE_K8S_DEPLOYMENT, namespace SCBE_K8S_NAMESPACE) at the ordered release and waits until
# the rollout is done. The container image is derived from the runtime unit's URI
# (SCBE_UNIT_AWS_URI); set SCBE_K8S_IMAGE_PREFIX to map versions to images instead.
# `kubectl rollout status` fails (non-zero) if the pods do not become ready in time, which the
# agent reports as a failed deploy, so the quorum rolls the batch back.
set -eu
: "${SCBE_K8S_DEPLOYMENT:?set SCBE_K8S_DEPLOYMENT in [hooks.env]}"
ns="${SCBE_K8S_NAMESPACE:-default}"
container="${SCBE_K8S_CONTAINER:-model}"
if [ -n "${SCBE_K8S_IMAGE_PREFIX:-}" ]; then
  image="${SCBE_K8S_IMAGE_PREFIX}:${SCBE_VERSION}"
else
  image="${SCBE_UNIT_AWS_URI:?the release has no runtime unit URI; set SCBE_K8S_IMAGE_PREFIX}"
fi
kubectl -n "$ns" set image "deployment/$SCBE_K8S_DEPLOYMENT" "$container=$image"
kubectl -n "$ns" annotate --overwrite "deployment/$SCBE_K8S_DEPLOYMENT" \
  scbe.fleet/version="$SCBE_VERSION" scbe.fleet/release-digest="$SCBE_RELEASE_DIGEST"
kubectl -n "$ns" rollout status "deployment/$SCBE_K8S_DEPLOYMENT" --timeout="${SCBE_K8S_TIMEOUT:-90s}"
