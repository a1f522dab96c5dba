"""``$POLYNB_HOME/config.yaml`` (or ``$POLYNB_CONFIG``): its ``kubernetes:`` section, validated, with every
problem at its line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from polynb.config_file import config_path, load_config, local_artifacts_root, parse_config
from polynb.spec.errors import SpecErrors


def test_no_file_is_no_settings(tmp_path: Path) -> None:
    config = load_config({"POLYNB_HOME": str(tmp_path)})
    assert config.path is None and dict(config.kubernetes) == {}


def test_the_file_is_found_in_polynb_home_or_named_by_polynb_config(tmp_path: Path) -> None:
    assert config_path({"POLYNB_HOME": str(tmp_path)}) == tmp_path / "config.yaml"
    other = tmp_path / "team.yaml"
    assert config_path({"POLYNB_HOME": str(tmp_path), "POLYNB_CONFIG": str(other)}) == other


def test_a_missing_polynb_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SpecErrors, match=r"team.yaml:0:0: \(root\): no such file \(from \$POLYNB_CONFIG\)"):
        load_config({"POLYNB_CONFIG": str(tmp_path / "team.yaml")})


def test_the_kubernetes_section_keeps_only_what_it_sets(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        "# team defaults\nkubernetes:\n  namespace: ml\n  artifacts_claim: shared\n  keep_finished: true\n"
        "  image_pull_grace: 600\n"
    )
    config = load_config({"POLYNB_HOME": str(tmp_path)})
    assert dict(config.kubernetes) == {
        "namespace": "ml",
        "artifacts_claim": "shared",
        "keep_finished": True,
        "image_pull_grace": 600,
    }
    assert config.where("kubernetes", "artifacts_claim") == f"{tmp_path / 'config.yaml'}:4:20"


def test_an_empty_or_comment_only_file_sets_nothing() -> None:
    assert dict(parse_config("# nothing yet\n", "c.yaml").kubernetes) == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kubernetes:\n  artifact_claim: x\n", "c.yaml:2:3: kubernetes.artifact_claim: unknown key; expected one of:"),
        ("kubernetes:\n  keep_finished: maybe\n", "c.yaml:2:18: kubernetes.keep_finished: Input should be a valid"),
        ("kubernetes:\n  security_profile: strict\n", "c.yaml:2:21: kubernetes.security_profile: Input should be"),
        (
            "kubernets:\n  namespace: ml\n",
            "c.yaml:1:1: kubernets: unknown key; expected one of: "
            "artifactsStore, artifactsSyncInterval, connections, kubernetes",
        ),
        ("kubernetes: [a]\n", "c.yaml:1:13: kubernetes: Input should be a valid dictionary"),
        ("artifactsSyncInterval: 0\n", "c.yaml:1:24: artifactsSyncInterval: Input should be greater than 0"),
        ("artifactsSyncInterval: often\n", "c.yaml:1:24: artifactsSyncInterval: Input should be a valid number"),
    ],
)
def test_every_problem_has_its_position(text: str, expected: str) -> None:
    with pytest.raises(SpecErrors) as exc:
        parse_config(text, "c.yaml")
    assert str(exc.value).startswith(expected), str(exc.value)


def test_connections_are_read_as_written_and_unknown_keys_are_refused() -> None:
    from polynb.config_file import parse_config
    from polynb.spec.errors import SpecErrors

    text = "connections:\n  - {name: repo, kind: git, schema: {url: /src, revision: main}, poll: 5}\n"
    config = parse_config(text, "c.yaml")
    assert config.connections == ({"name": "repo", "kind": "git", "schema": {"url": "/src", "revision": "main"},
                                   "poll": 5},)  # fmt: skip
    with pytest.raises(
        SpecErrors,
        match="shema: unknown key; expected one of: configMap, description, env, kind, name, poll, schema, secret,",
    ):
        parse_config("connections:\n  - {name: repo, kind: git, shema: {}}\n", "c.yaml")


AGENT_CONFIG = """\
artifactsStore: store
connections:
  - name: store
    kind: volume_claim
    schema: {claimName: polynb-artifacts, mountPath: /artifacts}
  - name: aws
    kind: s3
    schema: {bucket: "s3://team-data"}
    secret: {name: aws-credentials}
    env:
      - {name: AWS_REGION, value: eu-west-1}
  - name: settings
    kind: custom
    configMap: {name: team-settings, mountPath: /etc/team, items: [endpoint]}
"""


def test_connections_in_polyaxons_agent_shape() -> None:
    config = parse_config(AGENT_CONFIG, "c.yaml")
    assert config.artifacts_store == "store"
    by_name = {c["name"]: c for c in config.connections}
    assert by_name["aws"]["secret"] == {"name": "aws-credentials"}
    assert by_name["aws"]["env"] == [{"name": "AWS_REGION", "value": "eu-west-1"}]
    assert by_name["settings"]["configMap"] == {
        "name": "team-settings",
        "mountPath": "/etc/team",
        "items": ["endpoint"],
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "connections:\n  - {name: a, kind: ftp}\n",
            "c.yaml:2:21: connections[0].kind: Input should be 'volume_claim', 'host_path', 's3', 'gcs', 'wasb', 'git',"
            " 'registry' or 'custom'",
        ),
        (
            "connections:\n  - name: a\n    kind: s3\n    schema: {region: x}\n",
            "c.yaml:4:13: connections[0].schema: a s3 connection needs bucket in its schema",
        ),
        (
            "connections:\n  - {name: a, kind: custom}\n  - {name: a, kind: custom}\n",
            "c.yaml:3:12: connections[1].name: a second connection named a (the first is connections[0])",
        ),
        (
            "connections:\n  - {name: a, kind: custom, secret: {name: s, mount: /x}}\n",
            "c.yaml:2:47: connections[0].secret.mount: unknown key; expected one of: defaultMode, items, mountPath,",
        ),
        (
            "artifactsStore: nope\nconnections:\n  - {name: a, kind: custom}\n",
            "c.yaml:1:17: artifactsStore: no connection named nope (connections: a)",
        ),
        (
            "artifactsStore: a\nconnections:\n  - {name: a, kind: git, schema: {url: /src}}\n",
            "c.yaml:1:17: artifactsStore: connection a is a git connection; an artifacts store is one of:",
        ),
        (
            "connections:\n  - {name: a, kind: custom, env: [{name: X, valueFrom: {}}]}\n",
            "c.yaml:2:45: connections[0].env[0].valueFrom: unknown key; expected one of: name, value",
        ),
    ],
)
def test_every_connection_problem_has_its_position(text: str, expected: str) -> None:
    with pytest.raises(SpecErrors) as exc:
        parse_config(text, "c.yaml")
    assert str(exc.value).startswith(expected), str(exc.value)


def _store_config(tmp_path: Path, host_path: str, kind: str = "host_path") -> Path:
    key = "claimName" if kind == "volume_claim" else "hostPath"
    path = tmp_path / "conf" / "config.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(
        f"artifactsStore: shared\nconnections:\n  - name: shared\n    kind: {kind}\n"
        f"    schema: {{{key}: {host_path}, mountPath: /data/runs}}\n"
    )
    return path


def test_a_host_path_artifacts_store_is_the_local_artifacts_root(tmp_path: Path) -> None:
    path = _store_config(tmp_path, str(tmp_path / "runs"))
    assert local_artifacts_root(load_config({"POLYNB_CONFIG": str(path)})) == tmp_path / "runs"
    assert (tmp_path / "runs").is_dir()  # made when missing


def test_a_relative_host_path_is_relative_to_the_config_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _store_config(tmp_path, "runs")
    monkeypatch.chdir(tmp_path)
    assert local_artifacts_root(load_config({"POLYNB_CONFIG": str(path)})) == tmp_path / "conf" / "runs"


def test_no_host_path_store_keeps_the_default_root(tmp_path: Path) -> None:
    assert local_artifacts_root(load_config({"POLYNB_HOME": str(tmp_path)})) is None
    claim = _store_config(tmp_path, "polynb-artifacts", kind="volume_claim")
    assert local_artifacts_root(load_config({"POLYNB_CONFIG": str(claim)})) is None


def test_an_unusable_host_path_store_is_refused_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    for target, problem in ((tmp_path / "a-file", "is not a folder"), (tmp_path / "a-file" / "runs", "cannot be")):
        path = _store_config(tmp_path, str(target))
        with pytest.raises(SpecErrors) as caught:
            local_artifacts_root(load_config({"POLYNB_CONFIG": str(path)}))
        assert str(caught.value).startswith(
            f"{path}:5:24: connections[0].schema.hostPath: connection shared (the artifactsStore): {target} {problem}"
        )


def test_the_sync_interval_of_a_bucket_store_defaults_to_5_seconds() -> None:
    assert parse_config("artifactsSyncInterval: 0.5\n", "c.yaml").artifacts_sync_interval == 0.5
    assert parse_config("kubernetes: {}\n", "c.yaml").artifacts_sync_interval == 5.0
