"""IAM on two nodes sharing one database (issues 18 and 20): a user, a policy change and a role
session made on one node hold on the other — keys and policies are in the database, the session
key is shared (`server_keys`), and each node drops its caches when IAM's generation moves.

The database is the PostgreSQL of the PostgreSQL pass (`scripts/with-postgres`), else one SQLite
file both servers open.
"""

from __future__ import annotations

import json

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import POSTGRES, Server, fresh_postgres_database, running

from .helpers import wait_until

ROOT_KEY, ROOT_SECRET = "LKIANODESROOTKEY0001", "root-secret-of-the-nodes-0123456789"
ROOT = {"LAMBDALET_ROOT_ACCESS_KEY_ID": ROOT_KEY, "LAMBDALET_ROOT_SECRET_ACCESS_KEY": ROOT_SECRET}


def client(srv: Server, service: str, key: str = ROOT_KEY, secret: str = ROOT_SECRET, token: str | None = None):
    return boto3.client(service, endpoint_url=srv.url, region_name="us-east-1", aws_access_key_id=key,
                        aws_secret_access_key=secret, aws_session_token=token,
                        config=Config(retries={"max_attempts": 1}))


def test_users_policies_and_sessions_made_on_one_node_hold_on_the_other(tmp_path):
    database = (fresh_postgres_database(POSTGRES["url"]) if POSTGRES["url"]
                else f"sqlite:///{tmp_path / 'shared.db'}")
    args = ["--auth", "iam", "--database-url", database]
    with running(Server(tmp_path / "first", extra_env=ROOT, args=args)) as first, \
            running(Server(tmp_path / "second", extra_env=ROOT, args=args)) as second:
        iam = client(first, "iam")
        iam.create_user(UserName="alice")
        iam.put_user_policy(UserName="alice", PolicyName="list", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["lambda:ListFunctions", "sts:AssumeRole"], "Resource": "*"}]}))
        key = iam.create_access_key(UserName="alice")["AccessKey"]
        alice = (key["AccessKeyId"], key["SecretAccessKey"])
        assert "Functions" in client(second, "lambda", *alice).list_functions()  # a key the second never saw made

        role = iam.create_role(RoleName="reader", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"AWS": "arn:aws:iam::000000000000:user/alice"}}]}))
        iam.put_role_policy(RoleName="reader", PolicyName="list", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "lambda:ListFunctions",
                                                    "Resource": "*"}]}))
        credentials = client(first, "sts", *alice).assume_role(RoleArn=role["Role"]["Arn"],
                                                               RoleSessionName="sess")["Credentials"]
        session = (credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials["SessionToken"])
        assert client(second, "sts", *session).get_caller_identity()["Arn"] == \
            "arn:aws:sts::000000000000:assumed-role/reader/sess"  # minted by the first, verified by the second

        iam.delete_user_policy(UserName="alice", PolicyName="list")  # on the first; the second learns of it
        def refused() -> bool:
            try:
                client(second, "lambda", *alice).list_functions()
            except ClientError as exc:
                return exc.response["Error"]["Code"] == "AccessDeniedException"
            return False

        wait_until(refused, timeout=15, what="the second node to drop alice's old policy")
