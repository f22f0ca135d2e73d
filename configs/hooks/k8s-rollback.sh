#!/bin/sh
# Kubernetes rollback hook: `kubectl rollout undo` when going back to the previous revision
# would land on SCBE_VERSION is not reliable after several deploys, so this sets the image of
# SCBE_VERSION explicitly, exactly like a deploy.
set -eu
exec "$(dirname "$0")/k8s-deploy.sh"
