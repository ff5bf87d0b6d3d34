"""template.yaml for the local stack: loads it with CloudFormation's short tags, creates its
DynamoDB tables, SQS queues, S3 buckets and IAM roles in moto, resolves the functions'
environment (Globals.Function.Environment) against them, and checks what cfn-lint cannot
(`cfn.py check template.yaml`)."""

from __future__ import annotations

import fnmatch
import json
import secrets
import sys
import urllib.request
from pathlib import Path

import boto3
import yaml
from botocore.config import Config as BotoConfig

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
DUMMY_KEY = "testing"
NAME_PREFIX = "roomrec-"


class StackError(Exception):
    """A set-up step failed; the message says which and why."""


# ---------------------------------------------------------------------------------------------
# template.yaml: CloudFormation short tags and intrinsic functions
# ---------------------------------------------------------------------------------------------

class CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns `!Ref X` and friends into their long JSON forms ({"Ref": "X"})."""


CFN_SHORT_TAGS = (
    "Ref", "GetAtt", "Sub", "Join", "If", "Equals", "Select", "Split", "FindInMap", "Base64",
    "ImportValue", "GetAZs", "Not", "And", "Or", "Condition", "Cidr", "Transform", "Length",
    "ToJsonString",
)


def _make_constructor(tag: str):
    key = tag if tag in ("Ref", "Condition") else f"Fn::{tag}"

    def construct(loader: yaml.SafeLoader, node: yaml.Node):
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if tag == "GetAtt":
                # `!GetAtt Res.Attr` (the attribute itself may contain dots).
                resource, _, attribute = str(value).partition(".")
                value = [resource, attribute]
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {key: value}

    return construct


for _tag in CFN_SHORT_TAGS:
    CfnLoader.add_constructor(f"!{_tag}", _make_constructor(_tag))


def load_template(path: Path) -> dict:
    with path.open() as f:
        return yaml.load(f, Loader=CfnLoader)


class Resolver:
    """Evaluates intrinsic functions against the local stack's physical resources."""

    def __init__(self, template: dict, parameters: dict[str, str]):
        self.template = template
        self.parameters = parameters
        self.refs: dict[str, str] = {}  # logical id -> what !Ref returns
        self.attrs: dict[tuple[str, str], str] = {}  # (logical id, attribute) -> !GetAtt value
        self.on_missing = None  # callback(logical_id) that creates a resource on demand
        # A name for resources the local stack does not create (an ECS cluster a policy names),
        # instead of an error: set while resolving the roles.
        self.placeholders = False

    def pseudo(self, name: str):
        values = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": "roomrec",
            "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/roomrec/local",
        }
        if name not in values:
            raise StackError(f"unknown pseudo parameter {name}")
        return values[name]

    def ref(self, name: str):
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.parameters:
            return self.parameters[name]
        self._ensure(name)
        if name in self.refs:
            return self.refs[name]
        if self.placeholders and name in self.template.get("Resources", {}):
            return f"{NAME_PREFIX}{name}"
        kind = self.template.get("Resources", {}).get(name, {}).get("Type", "unknown")
        raise StackError(f"!Ref {name} ({kind}) has no local value; the local stack only "
                         f"creates DynamoDB tables, SQS queues and S3 buckets")

    def get_att(self, name: str, attribute: str):
        self._ensure(name)
        if (name, attribute) in self.attrs:
            return self.attrs[(name, attribute)]
        raise StackError(f"!GetAtt {name}.{attribute} has no local value")

    def _ensure(self, name: str) -> None:
        if name not in self.refs and self.on_missing is not None:
            self.on_missing(name)

    def resolve(self, value):
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            handler = self._FUNCTIONS.get(key)
            if handler is not None:
                return handler(self, arg)
            if key == "Condition" or key.startswith("Fn::"):
                raise StackError(f"{key} is not used by template.yaml, so the local stack does not "
                                 f"evaluate it (only Ref, Fn::GetAtt and Fn::Sub)")
        return {k: self.resolve(v) for k, v in value.items()}

    def _sub(self, arg):
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.resolve(v) for k, v in arg[1].items()}
        else:
            text, variables = arg, {}
        out, i = [], 0
        while i < len(text):
            if text.startswith("${!", i):
                out.append("${")
                i += 3
            elif text.startswith("${", i):
                end = text.index("}", i)
                name = text[i + 2:end]
                if name in variables:
                    out.append(str(variables[name]))
                elif "." in name and not name.startswith("AWS::"):
                    resource, _, attribute = name.partition(".")
                    out.append(str(self.get_att(resource, attribute)))
                else:
                    out.append(str(self.ref(name)))
                i = end + 1
            else:
                out.append(text[i])
                i += 1
        return "".join(out)

    _FUNCTIONS = {
        "Ref": lambda self, a: self.ref(self.resolve(a)),
        "Fn::GetAtt": lambda self, a: self.get_att(*(
            self.resolve(a) if isinstance(a, list) else str(a).split(".", 1))),
        "Fn::Sub": _sub,
    }


# ---------------------------------------------------------------------------------------------
# Resources in moto
# ---------------------------------------------------------------------------------------------

TABLE_TYPES = ("AWS::DynamoDB::Table", "AWS::Serverless::SimpleTable")
QUEUE_TYPE = "AWS::SQS::Queue"
BUCKET_TYPE = "AWS::S3::Bucket"
QUEUE_ATTRIBUTES = (
    "VisibilityTimeout", "MessageRetentionPeriod", "FifoQueue", "ContentBasedDeduplication",
    "DelaySeconds", "MaximumMessageSize", "ReceiveMessageWaitTimeSeconds", "RedrivePolicy",
    "RedriveAllowPolicy", "DeduplicationScope", "FifoThroughputLimit",
)


def boto_client(service: str, aws_port: int):
    return boto3.client(
        service,
        endpoint_url=f"http://127.0.0.1:{aws_port}",
        region_name=REGION,
        aws_access_key_id=DUMMY_KEY,
        aws_secret_access_key=DUMMY_KEY,
        config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )


class ResourceCreator:
    """Creates the template's tables, queues and buckets in moto, dependencies first."""

    def __init__(self, template: dict, resolver: Resolver, aws_port: int):
        self.resources = template.get("Resources", {})
        self.resolver = resolver
        self.aws_port = aws_port
        self.in_progress: set[str] = set()
        self.created: list[str] = []
        resolver.on_missing = self.ensure

    def create_all(self) -> list[str]:
        for logical_id in self.resources:
            self.ensure(logical_id)
        return self.created

    def ensure(self, logical_id: str) -> None:
        if logical_id in self.resolver.refs or logical_id not in self.resources:
            return
        kind = self.resources[logical_id].get("Type")
        if kind not in (*TABLE_TYPES, QUEUE_TYPE, BUCKET_TYPE):
            return
        if logical_id in self.in_progress:
            raise StackError(f"circular reference through {logical_id}")
        self.in_progress.add(logical_id)
        try:
            props = self.resolver.resolve(self.resources[logical_id].get("Properties") or {})
            if kind in TABLE_TYPES:
                self._table(logical_id, kind, props)
            elif kind == QUEUE_TYPE:
                self._queue(logical_id, props)
            else:
                self._bucket(logical_id, props)
        except StackError:
            raise
        except Exception as e:  # boto errors: say which resource
            raise StackError(f"creating {logical_id} ({kind}) in moto failed: {e}") from e
        finally:
            self.in_progress.discard(logical_id)
        self.created.append(f"{kind} {logical_id} -> {self.resolver.refs[logical_id]}")

    def _table(self, logical_id: str, kind: str, props: dict) -> None:
        ddb = boto_client("dynamodb", self.aws_port)
        name = props.get("TableName") or f"{NAME_PREFIX}{logical_id}"
        if kind == "AWS::Serverless::SimpleTable":
            key = props.get("PrimaryKey") or {"Name": "id", "Type": "String"}
            attr_type = {"String": "S", "Number": "N", "Binary": "B"}[key.get("Type", "String")]
            props = {
                "AttributeDefinitions": [{"AttributeName": key["Name"], "AttributeType": attr_type}],
                "KeySchema": [{"AttributeName": key["Name"], "KeyType": "HASH"}],
                "BillingMode": "PAY_PER_REQUEST",
            }
        args = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        if args["BillingMode"] == "PROVISIONED":
            args["ProvisionedThroughput"] = props.get(
                "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5})
        for index_kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if props.get(index_kind):
                args[index_kind] = props[index_kind]
        if props.get("StreamSpecification"):
            args["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        description = ddb.create_table(**args)["TableDescription"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled", True):
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={
                "AttributeName": ttl["AttributeName"], "Enabled": True})
        self.resolver.refs[logical_id] = name
        self.resolver.attrs[(logical_id, "Arn")] = description["TableArn"]
        if description.get("LatestStreamArn"):
            self.resolver.attrs[(logical_id, "StreamArn")] = description["LatestStreamArn"]

    def _queue(self, logical_id: str, props: dict) -> None:
        sqs = boto_client("sqs", self.aws_port)
        name = props.get("QueueName") or f"{NAME_PREFIX}{logical_id}"
        fifo = str(props.get("FifoQueue", "false")).lower() == "true"
        if fifo and not name.endswith(".fifo"):
            name += ".fifo"
        attributes = {}
        for key in QUEUE_ATTRIBUTES:
            if key not in props:
                continue
            value = props[key]
            if isinstance(value, dict):
                value = json.dumps(value)
            elif isinstance(value, bool):
                value = "true" if value else "false"
            attributes[key] = str(value)
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        self.resolver.refs[logical_id] = url
        self.resolver.attrs.update({
            (logical_id, "Arn"): arn,
            (logical_id, "QueueName"): name,
            (logical_id, "QueueUrl"): url,
        })

    def _bucket(self, logical_id: str, props: dict) -> None:
        s3 = boto_client("s3", self.aws_port)
        name = (props.get("BucketName") or f"{NAME_PREFIX}{logical_id}").lower()
        s3.create_bucket(Bucket=name)
        rules = props.get("LifecycleConfiguration", {}).get("Rules", [])
        if rules:
            # CloudFormation's rule shape to S3's: `Id` is `ID`, and an empty filter is "all".
            rules = [{("ID" if k == "Id" else k): v for k, v in rule.items()} | {"Filter": {"Prefix": ""}}
                     for rule in rules]
            s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})
        self.resolver.refs[logical_id] = name
        self.resolver.attrs.update({
            (logical_id, "Arn"): f"arn:aws:s3:::{name}",
            (logical_id, "DomainName"): f"{name}.s3.amazonaws.com",
            (logical_id, "RegionalDomainName"): f"{name}.s3.{REGION}.amazonaws.com",
        })


def local_parameters(template: dict, hook_token: str, rtmp_port: int) -> dict[str, str]:
    overrides = {
        "AllowPrivateCallbacks": "true",
        # The worker may pull from the local media server only (not moto on the same host).
        "StreamAllowList": f"127.0.0.1:{rtmp_port}",
        "HookToken": hook_token,
        # A fresh key per stack: the tokens of one run never work in another.
        "TokenKey": secrets.token_hex(32),
        "MediaPullBase": f"rtmp://127.0.0.1:{rtmp_port}",
        "MediaPublishBase": f"rtmp://127.0.0.1:{rtmp_port}/live",
        # The worker service's network and image: the local stack runs the worker as a
        # process, so nothing reads these.
        "WorkerImage": "roomrec-worker:local",
        "VpcId": "vpc-local",
        "Subnets": "subnet-local",
    }
    values = {}
    for name, spec in (template.get("Parameters") or {}).items():
        if name in overrides:
            values[name] = overrides[name]
        elif "Default" in (spec or {}):
            values[name] = str(spec["Default"])
        else:
            raise StackError(f"template parameter {name} has no Default and no local value; "
                             f"add one to local_parameters() in infra/local/{Path(__file__).name}")
    return values


def function_environment(template: dict, resolver: Resolver) -> dict[str, str]:
    variables = (((template.get("Globals") or {}).get("Function") or {})
                 .get("Environment") or {}).get("Variables") or {}
    env = {}
    for key, value in variables.items():
        try:
            resolved = resolver.resolve(value)
        except StackError as e:
            raise StackError(f"Globals.Function.Environment.Variables.{key}: {e}") from e
        if isinstance(resolved, bool):  # YAML `true` means CloudFormation's "true"
            env[key] = "true" if resolved else "false"
        else:
            env[key] = str(resolved)
    return env


# ---------------------------------------------------------------------------------------------
# IAM: every process calls AWS as the role the template gives it
# ---------------------------------------------------------------------------------------------

ROLE_TYPE = "AWS::IAM::Role"
FUNCTION_TYPE = "AWS::Serverless::Function"
TASK_DEFINITION_TYPE = "AWS::ECS::TaskDefinition"
# Long enough for any local stack; moto does not expire assumed-role credentials anyway.
SESSION_SECONDS = 12 * 3600


def sam_transform(template: dict, parameters: dict[str, str]) -> dict:
    """template.yaml as CloudFormation receives it: SAM's own translator expands each function's
    `Policies` (policy templates, statements, managed policies) into the role it creates, so the
    roles here are the deployed ones."""
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    sam = json.loads(json.dumps(template))
    for resource in sam.get("Resources", {}).values():
        if resource.get("Type") == FUNCTION_TYPE:
            # SAM wants a packaged code location; the code does not matter here.
            resource["Properties"]["CodeUri"] = "s3://local/bootstrap.zip"
    translator = Translator(None, Parser(), boto_session=boto3.Session(region_name=REGION))
    return translator.translate(sam, parameter_values=dict(parameters), get_managed_policy_map=lambda: {})


def role_users(template: dict, transformed: dict) -> dict[str, str]:
    """Who runs as which role: each function by its binary's name (`BuildProperties.Binary`),
    and each ECS container by its name (the recording worker is `worker`)."""
    users = {}
    for logical_id, resource in transformed.get("Resources", {}).items():
        props = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Lambda::Function":
            binary = template["Resources"][logical_id]["Metadata"]["BuildProperties"]["Binary"]
            users[binary] = props["Role"]["Fn::GetAtt"][0]
        elif resource.get("Type") == TASK_DEFINITION_TYPE:
            for container in props.get("ContainerDefinitions", []):
                users[container["Name"]] = props["TaskRoleArn"]["Fn::GetAtt"][0]
    return users


class Identities:
    """Creates the template's roles in moto, an operator role with every permission (for
    `roomrec-admin create-credential` and the tests' own checks, as an operator deploying
    roomrec has), and credentials for each."""

    def __init__(self, template: dict, resolver: Resolver, aws_port: int):
        self.template = template
        self.transformed = sam_transform(template, resolver.parameters)
        self.resolver = resolver
        self.aws_port = aws_port

    def create_roles(self) -> list[str]:
        iam = boto_client("iam", self.aws_port)
        created = []
        self.resolver.placeholders = True
        for logical_id, resource in self.transformed["Resources"].items():
            if resource.get("Type") != ROLE_TYPE:
                continue
            props = self.resolver.resolve(resource["Properties"])
            name = f"{NAME_PREFIX}{logical_id}"
            iam.create_role(RoleName=name, MaxSessionDuration=SESSION_SECONDS,
                            AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]))
            for policy in props.get("Policies", []):
                # SAM's policy templates leave the version out, which moto refuses.
                document = {"Version": "2012-10-17", **policy["PolicyDocument"]}
                iam.put_role_policy(RoleName=name, PolicyName=policy["PolicyName"],
                                    PolicyDocument=json.dumps(document))
            for arn in props.get("ManagedPolicyArns", []):
                iam.attach_role_policy(RoleName=name, PolicyArn=arn)
            self.resolver.refs[logical_id] = name
            self.resolver.attrs[(logical_id, "Arn")] = f"arn:aws:iam::{ACCOUNT_ID}:role/{name}"
            created.append(f"{ROLE_TYPE} {logical_id} -> {name}")
        self.resolver.placeholders = False
        return created

    def operator(self) -> dict[str, str]:
        """Credentials allowed everything, as a role session (an operator's usual kind)."""
        iam = boto_client("iam", self.aws_port)
        name = f"{NAME_PREFIX}operator"
        iam.create_role(RoleName=name, MaxSessionDuration=SESSION_SECONDS,
                        AssumeRolePolicyDocument=json.dumps({
                            "Version": "2012-10-17",
                            "Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT_ID},
                                           "Action": "sts:AssumeRole"}]}))
        iam.put_role_policy(RoleName=name, PolicyName="everything", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        return self._assume(f"arn:aws:iam::{ACCOUNT_ID}:role/{name}", "operator")

    def _assume(self, role_arn: str, session: str) -> dict[str, str]:
        c = boto_client("sts", self.aws_port).assume_role(
            RoleArn=role_arn, RoleSessionName=session, DurationSeconds=SESSION_SECONDS)["Credentials"]
        return {"AWS_ACCESS_KEY_ID": c["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": c["SecretAccessKey"],
                "AWS_SESSION_TOKEN": c["SessionToken"]}

    def role_credentials(self) -> dict[str, dict[str, str]]:
        """`{user: {AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN}}` for each
        function binary and container of the template."""
        return {user: self._assume(self.resolver.get_att(role, "Arn"), user)
                for user, role in role_users(self.template, self.transformed).items()}


def enforce_iam(aws_port: int) -> None:
    """From now on moto checks every request's signature and the caller's policies."""
    request = urllib.request.Request(f"http://127.0.0.1:{aws_port}/moto-api/reset-auth", data=b"0",
                                     headers={"Content-Type": "text/plain"}, method="POST")
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10) as r:
        if r.status != 200:
            raise StackError(f"moto refused to enforce IAM: HTTP {r.status}")


# ---------------------------------------------------------------------------------------------
# The worker's environment
# ---------------------------------------------------------------------------------------------

WORKER_CONTAINER = ("WorkerTaskDefinition", "worker")
# Variables the worker reads beyond the functions' (worker/runner/src/config.rs).
WORKER_ONLY_VARIABLES = {"ROOMREC_MAX_JOBS", "ROOMREC_RECORDINGS_BUCKET"}


def worker_environment_mismatches(template: dict) -> list[str]:
    """Where the worker container's environment in the template differs from the functions'
    (Globals.Function.Environment): a variable one has and the other lacks, or a different
    value. The local stack gives the worker the functions' environment, so a mismatch is a
    deployed worker that runs differently from the tested one."""
    functions = (((template.get("Globals") or {}).get("Function") or {})
                 .get("Environment") or {}).get("Variables") or {}
    resource, container_name = WORKER_CONTAINER
    definition = (template.get("Resources") or {}).get(resource)
    if definition is None:
        return [f"no {resource} resource"]
    containers = [c for c in definition.get("Properties", {}).get("ContainerDefinitions", [])
                  if c.get("Name") == container_name]
    if len(containers) != 1:
        return [f"{resource} has no single container named {container_name}"]
    worker = {item["Name"]: item["Value"] for item in containers[0].get("Environment", [])}
    problems = []
    for name, value in functions.items():
        if name not in worker:
            problems.append(f"{name} is in Globals.Function.Environment but not the worker's")
        elif worker[name] != value:
            problems.append(f"{name} is {worker[name]} for the worker but {value} for the functions")
    for name in worker:
        if name not in functions and name not in WORKER_ONLY_VARIABLES:
            problems.append(f"{name} is in the worker's environment but not Globals.Function.Environment")
    return problems


# ---------------------------------------------------------------------------------------------
# Permissions moto cannot check
# ---------------------------------------------------------------------------------------------

# AWS actions our code makes happen where moto does not see them, by the role they need: the
# worker asks the ECS agent to protect its task (worker/runner/src/agent.rs), and the agent calls
# ECS with the task role's credentials.
UNCHECKED_BY_MOTO = {"WorkerTaskRole": ["ecs:UpdateTaskProtection"]}


def allows(statement: dict, action: str) -> bool:
    actions = statement.get("Action", [])
    actions = [actions] if isinstance(actions, str) else actions
    return statement.get("Effect") == "Allow" and any(
        fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in actions)


def missing_unchecked_permissions(template: dict) -> list[str]:
    """The actions of UNCHECKED_BY_MOTO a role of the template does not allow."""
    problems = []
    for role, actions in UNCHECKED_BY_MOTO.items():
        resource = (template.get("Resources") or {}).get(role)
        if resource is None:
            problems.append(f"no {role} resource")
            continue
        statements = [statement for policy in resource.get("Properties", {}).get("Policies", [])
                      for statement in policy["PolicyDocument"]["Statement"]]
        problems += [f"{role} does not allow {action}, which moto cannot check"
                     for action in actions if not any(allows(s, action) for s in statements)]
    return problems


def main(argv: list[str]) -> int:
    """`cfn.py check TEMPLATE`: the template checks cfn-lint cannot make."""
    if len(argv) != 2 or argv[0] != "check":
        print("usage: cfn.py check TEMPLATE", file=sys.stderr)
        return 2
    template = load_template(Path(argv[1]))
    problems = worker_environment_mismatches(template) + missing_unchecked_permissions(template)
    for problem in problems:
        print(f"{argv[1]}: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
