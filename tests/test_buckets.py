"""What a bucket connection means on this machine: where it points and the credentials it is listed with
(``polynb.buckets``; the listing itself is tested against a real S3-compatible server in
scheduler/test_bucket_source.py and cli/test_connections.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from polynb.buckets import bucket_of, has_credentials


def test_an_s3_bucket_and_its_prefix_with_the_connections_env_over_the_process_env() -> None:
    connection = {"name": "data", "kind": "s3", "schema": {"bucket": "s3://team-data/incoming/csv/"},
                  "env": [{"name": "AWS_ENDPOINT_URL", "value": "http://127.0.0.1:9000"},
                          {"name": "AWS_ACCESS_KEY_ID", "value": "mine"}]}  # fmt: skip
    process = {"AWS_ACCESS_KEY_ID": "process", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "eu-west-1"}
    bucket = bucket_of(connection, process)
    assert (bucket.scheme, bucket.bucket, bucket.prefix, bucket.root) == ("s3", "team-data", "incoming/csv",
                                                                         "team-data/incoming/csv")  # fmt: skip
    assert bucket.options["key"] == "mine" and bucket.options["secret"] == "s"
    assert bucket.endpoint == "http://127.0.0.1:9000"
    assert bucket.options["client_kwargs"] == {"region_name": "eu-west-1"}
    assert bucket_of({"name": "b", "kind": "s3", "schema": {"bucket": "team-data"}}, {}).root == "team-data"


def test_gcs_and_wasb_buckets_in_polyaxons_url_shapes() -> None:
    gcs = bucket_of({"name": "g", "kind": "gcs", "schema": {"bucket": "gs://models/v2"}},
                    {"GOOGLE_APPLICATION_CREDENTIALS": "/keys/sa.json"})  # fmt: skip
    assert (gcs.bucket, gcs.prefix, gcs.options) == ("models", "v2", {"token": "/keys/sa.json"})
    wasb = bucket_of({"name": "w", "kind": "wasb",
                      "schema": {"bucket": "wasbs://data@team.blob.core.windows.net/incoming"}},
                     {"AZURE_ACCOUNT_KEY": "k"})  # fmt: skip
    assert (wasb.bucket, wasb.prefix) == ("data", "incoming")
    assert wasb.options == {"account_name": "team", "account_key": "k"}


def test_a_bucket_url_of_another_kind_is_refused_with_the_expected_scheme() -> None:
    with pytest.raises(ValueError, match="the URL of a s3 bucket starts with s3:// or s3a://"):
        bucket_of({"name": "data", "kind": "s3", "schema": {"bucket": "gs://models"}}, {})
    with pytest.raises(ValueError, match=r"needs `schema\.bucket`"):
        bucket_of({"name": "data", "kind": "s3", "schema": {}}, {})


def test_credentials_here_come_from_the_connection_the_process_or_the_sdks_files(tmp_path: Path) -> None:
    s3 = {"name": "data", "kind": "s3", "schema": {"bucket": "s3://b"}, "secret": {"name": "aws"}}
    assert not has_credentials(s3, {"HOME": str(tmp_path)})
    assert has_credentials(s3, {"HOME": str(tmp_path), "AWS_ACCESS_KEY_ID": "k"})
    assert has_credentials({**s3, "env": [{"name": "AWS_PROFILE", "value": "team"}]}, {"HOME": str(tmp_path)})
