"""The C S3 client (src/net/s3.c) against moto's server with signature checking
on, through the test-only driver build/tests/s3tool."""
import hashlib
import os
import pathlib
import subprocess
import uuid

import pytest

from fixtures.http_server import payload

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOOL = str(ROOT / "build" / "tests" / "s3tool")
MiB = 1024 * 1024


def s3tool(srv, *args, env=None):
    return subprocess.run([TOOL, *args], capture_output=True, env=env or srv.env())


def sha(b):
    return hashlib.sha256(b).hexdigest()


@pytest.fixture
def prefix():
    return "t-%s/" % uuid.uuid4().hex[:8]


def test_moto_rejects_a_wrong_signature(s3_server):
    from botocore.exceptions import ClientError
    with pytest.raises(ClientError) as exc:
        s3_server.client(secret="not-the-secret").list_objects_v2(Bucket=s3_server.bucket)
    assert exc.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


@pytest.mark.parametrize("size", [0, 1, 256, 5 * MiB + 3])
def test_round_trip_sizes(s3_server, tmp_path, prefix, size):
    data = bytes(range(256)) * (size // 256) + payload(size % 256)
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(data)
    key = prefix + "obj-%d" % size
    assert s3tool(s3_server, "put", s3_server.bucket, key, str(src)).returncode == 0
    r = s3tool(s3_server, "get", s3_server.bucket, key, str(dst))
    assert r.returncode == 0, r.stderr
    assert sha(dst.read_bytes()) == sha(data)
    # What boto3 reads is what we wrote.
    body = s3_server.client().get_object(Bucket=s3_server.bucket, Key=key)["Body"].read()
    assert sha(body) == sha(data)
    r = s3tool(s3_server, "head", s3_server.bucket, key)
    assert b"size %d\n" % size in r.stdout


def test_multipart_upload_of_50_mib(s3_server, tmp_path, prefix):
    data = payload(50 * MiB + 12345)
    src, dst = tmp_path / "big", tmp_path / "big.out"
    src.write_bytes(data)
    key = prefix + "big.bin"
    r = s3tool(s3_server, "--part-size", str(8 * MiB), "put", s3_server.bucket, key, str(src))
    assert r.returncode == 0, r.stderr
    # initiate + 7 parts + complete
    assert b"requests 9" in r.stderr
    head = s3_server.client().head_object(Bucket=s3_server.bucket, Key=key)
    assert head["ContentLength"] == len(data)
    assert head["ETag"].endswith('-7"')
    r = s3tool(s3_server, "get", s3_server.bucket, key, str(dst))
    assert r.returncode == 0, r.stderr
    assert sha(dst.read_bytes()) == sha(data)


KEYS = ["with space.txt", "plus+sign", "tilde~x", "utf8-é-ü-日本", "sub/dir/file",
        "odd!'()*chars", "amp&eq=semi;colon", "percent%20literal"]


def test_unusual_keys_round_trip_and_list(s3_server, tmp_path, prefix):
    for i, k in enumerate(KEYS):
        f = tmp_path / ("f%d" % i)
        f.write_bytes(k.encode())
        r = s3tool(s3_server, "put", s3_server.bucket, prefix + k, str(f))
        assert r.returncode == 0, (k, r.stderr)
    for k in KEYS:
        r = s3tool(s3_server, "cat", s3_server.bucket, prefix + k)
        assert r.stdout == k.encode(), k
    listed = s3_server.client().list_objects_v2(Bucket=s3_server.bucket, Prefix=prefix)
    assert sorted(o["Key"] for o in listed["Contents"]) == sorted(prefix + k for k in KEYS)
    r = s3tool(s3_server, "ls", s3_server.bucket, prefix)
    ours = [line.split("\t", 1)[1] for line in r.stdout.decode().splitlines()]
    assert sorted(ours) == sorted(prefix + k for k in KEYS)


def test_listing_follows_continuation_tokens(s3_server, prefix):
    c = s3_server.client()
    names = ["k%02d" % i for i in range(23)]
    for n in names:
        c.put_object(Bucket=s3_server.bucket, Key=prefix + n, Body=n.encode())
    c.put_object(Bucket=s3_server.bucket, Key=prefix.rstrip("/") + "-other/x", Body=b"")
    r = s3tool(s3_server, "--page-size", "5", "ls", s3_server.bucket, prefix)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert lines == ["3\t%s%s" % (prefix, n) for n in names]
    assert b"requests 5" in r.stderr


def test_bad_secret_gives_one_line_naming_key_not_secret(s3_server, tmp_path):
    bad = "WrongSecretValue/abc+123"
    r = s3tool(s3_server, "cat", s3_server.bucket, "anything",
               env=s3_server.env(AWS_SECRET_ACCESS_KEY=bad))
    assert r.returncode == 1
    err = r.stderr.decode()
    line = [l for l in err.splitlines() if l.startswith("s3tool:")]
    assert len(line) == 1
    assert line[0].startswith("s3tool: auth: S3 GET s3://%s/anything: access denied" % s3_server.bucket)
    assert s3_server.key_id in line[0] and "bucket %s" % s3_server.bucket in line[0]
    assert "AWS_SECRET_ACCESS_KEY" in line[0]
    assert bad not in err and s3_server.secret not in err


def test_missing_key_and_bucket_are_404s(s3_server, tmp_path):
    dst = tmp_path / "never"
    r = s3tool(s3_server, "get", s3_server.bucket, "no/such/key", str(dst))
    assert r.returncode == 1
    assert b"s3tool: notfound: S3 GET s3://mfs-test/no/such/key: no such key" in r.stderr
    assert not dst.exists() and not list(tmp_path.iterdir())
    r = s3tool(s3_server, "head", s3_server.bucket, "no/such/key")
    assert b"notfound" in r.stderr
    r = s3tool(s3_server, "cat", "no-such-bucket-x", "k")
    assert b"bucket no-such-bucket-x does not exist" in r.stderr


def test_delete(s3_server, prefix):
    c = s3_server.client()
    c.put_object(Bucket=s3_server.bucket, Key=prefix + "gone", Body=b"x")
    assert s3tool(s3_server, "rm", s3_server.bucket, prefix + "gone").returncode == 0
    assert "Contents" not in c.list_objects_v2(Bucket=s3_server.bucket, Prefix=prefix)


def test_profile_credentials_file(s3_server, tmp_path):
    creds = tmp_path / "credentials"
    creds.write_text("[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n"
                     "[ci]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                     % (s3_server.key_id, s3_server.secret))
    env = s3_server.env(AWS_PROFILE="ci", AWS_SHARED_CREDENTIALS_FILE=str(creds))
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    s3_server.client().put_object(Bucket=s3_server.bucket, Key="profile-key", Body=b"via profile")
    r = s3tool(s3_server, "cat", s3_server.bucket, "profile-key", env=env)
    assert r.stdout == b"via profile", r.stderr
    env["AWS_PROFILE"] = "missing"
    r = s3tool(s3_server, "cat", s3_server.bucket, "profile-key", env=env)
    assert r.returncode == 1
    assert (b"s3tool: config: AWS_PROFILE=missing: no such profile in %s or "
            % str(creds).encode()) in r.stderr


def test_virtual_hosted_addressing_against_moto(s3_server, tmp_path, prefix):
    # curl resolves <bucket>.localhost to the loopback itself; moto reads the
    # bucket from the Host and checks the signature over it.
    port = s3_server.url.rsplit(":", 1)[1]
    env = s3_server.env(METAFLOW_S3_ENDPOINT_URL="http://localhost:%s" % port,
                        MFSANDBOX_S3_ADDRESSING="virtual")
    src, dst = tmp_path / "src", tmp_path / "dst"
    data = payload(6 * MiB + 7)
    src.write_bytes(data)
    key = prefix + "virtual host/é.bin"
    r = s3tool(s3_server, "--part-size", str(5 * MiB), "put", s3_server.bucket, key, str(src),
               env=env)
    assert r.returncode == 0, r.stderr
    assert sha(s3_server.client().get_object(Bucket=s3_server.bucket, Key=key)["Body"].read()) \
        == sha(data)
    assert s3tool(s3_server, "get", s3_server.bucket, key, str(dst), env=env).returncode == 0
    assert sha(dst.read_bytes()) == sha(data)
    r = s3tool(s3_server, "ls", s3_server.bucket, prefix, env=env)
    assert r.stdout.decode() == "%d\t%s\n" % (len(data), key)
    # A wrong secret over the virtual host is still refused by moto.
    r = s3tool(s3_server, "cat", s3_server.bucket, key,
               env=dict(env, AWS_SECRET_ACCESS_KEY="wrong"))
    assert r.returncode == 1 and b"access denied (SignatureDoesNotMatch)" in r.stderr
