#!/usr/bin/env bash
# Deploys the whole system into the AWS account and region of the caller's AWS credentials:
# builds the worker image (infra/worker/Dockerfile), pushes it to an ECR repository (created
# when missing), then `sam build` and `sam deploy` with that image as WorkerImage. The first
# run is guided (stack name, region, VPC and subnets, ...) and saves the answers to
# samconfig.toml; later runs reuse them and change only the image.
#
#   ROOMREC_ECR_REPOSITORY  the worker image's repository (default roomrec-worker)
#   AWS_REGION              the region (default: the AWS CLI's configured one)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SAM=.venv/bin/sam
REPOSITORY="${ROOMREC_ECR_REPOSITORY:-roomrec-worker}"
export SAM_CLI_TELEMETRY="${SAM_CLI_TELEMETRY:-0}"

log() { printf 'deploy: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

command -v aws >/dev/null || die "the AWS CLI is missing: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html"
command -v docker >/dev/null || die "docker is missing: it builds the worker image"
[ -x "$SAM" ] || die "$SAM is missing: run make install"
cargo lambda --version >/dev/null 2>&1 || die "cargo lambda is missing: sam build uses it (pip install cargo-lambda, or see https://www.cargo-lambda.info)"

region="${AWS_REGION:-$(aws configure get region || true)}"
[ -n "$region" ] || die "no region: set AWS_REGION or run aws configure"
account="$(aws sts get-caller-identity --query Account --output text)" \
  || die "no AWS credentials: aws sts get-caller-identity failed"
registry="$account.dkr.ecr.$region.amazonaws.com"

# The image is tagged with the commit it was built from; uncommitted changes add a timestamp,
# so a rebuilt image is a new tag and ECS starts new tasks with it.
tag="$(git rev-parse --short=12 HEAD)"
git diff --quiet HEAD -- || tag="$tag-dirty-$(date -u +%Y%m%d%H%M%S)"
image="$registry/$REPOSITORY:$tag"

if ! aws ecr describe-repositories --region "$region" --repository-names "$REPOSITORY" >/dev/null 2>&1; then
  log "creating the ECR repository $REPOSITORY in $region"
  aws ecr create-repository --region "$region" --repository-name "$REPOSITORY" \
    --image-scanning-configuration scanOnPush=true >/dev/null
fi
aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "$registry"
log "building $image"
docker build --platform linux/amd64 -f infra/worker/Dockerfile -t "$image" .
docker push "$image"

"$SAM" build
if [ -f samconfig.toml ]; then
  # Parameters not given here keep the stack's current values.
  "$SAM" deploy --region "$region" --no-fail-on-empty-changeset --parameter-overrides "WorkerImage=$image"
else
  log "first deployment: answer sam's questions (README, Deploying); they are saved to samconfig.toml"
  "$SAM" deploy --guided --region "$region" --parameter-overrides "WorkerImage=$image"
fi
