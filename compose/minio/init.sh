#!/bin/sh
# One-shot MinIO setup, run by the `minio-init` service (quay.io/minio/mc image):
# the two lake buckets, a policy limited to them, and the pipeline user holding it.
# Safe to run again: every step either skips what exists or replaces it with the same.
set -eu

# Root credentials are used here and nowhere else; clients of the lake buckets get the
# limited pipeline user.
mc alias set iotlake http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"

mc mb --ignore-existing iotlake/iotlake-lake
mc mb --ignore-existing iotlake/iotlake-landing

# `policy create` overwrites a policy of the same name, so edits to the JSON apply on re-run.
mc admin policy create iotlake iotlake-pipeline /iotlake/minio/pipeline-policy.json

# `user add` on an existing user resets its secret to the one in .env.
mc admin user add iotlake "$MINIO_PIPELINE_ACCESS_KEY" "$MINIO_PIPELINE_SECRET_KEY"

# `policy attach` refuses a policy that is already attached, so detach it first (which
# fails harmlessly on the first run) and then attach, strictly.
mc admin policy detach iotlake iotlake-pipeline --user "$MINIO_PIPELINE_ACCESS_KEY" >/dev/null 2>&1 || true
mc admin policy attach iotlake iotlake-pipeline --user "$MINIO_PIPELINE_ACCESS_KEY"

echo "minio-init: buckets iotlake-lake and iotlake-landing ready for user $MINIO_PIPELINE_ACCESS_KEY"
