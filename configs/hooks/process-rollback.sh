#!/bin/sh
# Plain-process rollback hook: the same as a deploy of the older version (SCBE_VERSION is the
# version to go back to; SCBE_PREVIOUS_VERSION the one being left).
set -eu
exec "$(dirname "$0")/process-deploy.sh"
