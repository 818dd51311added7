#!/usr/bin/env python3
"""Schemathesis against the served OpenAPI document (issue 23): every check, seeded data.

Starts `jeex-api serve` on a fresh database, seeds it through the API (a project with
documents, an API key, an operation) so that path parameters name real resources, then runs
schemathesis with all checks, bounded in time. Exits non-zero on any failure.

Usage: run.py JEEX_API_BINARY SCHEMATHESIS_BINARY
Environment: TEST_DATABASE_URL (a database on the server to create the scratch one beside),
TEST_REDIS_URL, CONTRACT_MAX_TIME (seconds, default 150), CONTRACT_SEED.
"""

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body=None, token=None, expect=(200, 201, 202, 204)):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if body is not None:
        req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status in expect, (method, path, resp.status)
        text = resp.read()
        return json.loads(text) if text else None


def scratch_database(base_url):
    """A fresh database beside TEST_DATABASE_URL's."""
    name = "jeex_t_" + secrets.token_hex(16)
    admin = base_url
    subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], check=True)
    return name, re.sub(r"/[^/?]*(\?|$)", f"/{name}\\1", base_url, count=1)


def main():
    jeex_api, st = sys.argv[1], sys.argv[2]
    base_db = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/jeex_test")
    redis = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    max_time = os.environ.get("CONTRACT_MAX_TIME", "150")
    seed = os.environ.get("CONTRACT_SEED", "23")
    name, db = scratch_database(base_db)
    data_dir = tempfile.mkdtemp(prefix="jeex-contract-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JEEX_", "OTEL_")) and k not in ("DATABASE_URL", "REDIS_URL", "RUST_LOG")}
    env.update(
        JEEX_ENV="development",
        DATABASE_URL=db,
        REDIS_URL=redis,
        JEEX_REDIS_PREFIX=f"contract:{secrets.token_hex(6)}:",
        JEEX_DATA_DIR=data_dir,
        JEEX_HTTP_ADDR=f"127.0.0.1:{port}",
        JEEX_LOG_FORMAT="json",
        RUST_LOG="warn",
        # The run sends thousands of requests from one address.
        JEEX_RATE_LIMIT_READS="off",
        JEEX_RATE_LIMIT_WRITES="off",
        JEEX_RATE_LIMIT_AUTH="off",
        JEEX_VECTOR_DIM="4",
        JEEX_EXPOSE_ERROR_DETAILS="false",
    )
    subprocess.run([jeex_api, "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    log_path = os.path.join(data_dir, "server.log")
    log = open(log_path, "w")
    server = subprocess.Popen([jeex_api, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/health/live", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        token = call(base, "POST", "/api/v1/auth/dev-login", {"email": "contract@example.com"})["access_token"]
        project = call(base, "POST", "/api/v1/projects", {"name": "Contract"}, token)["id"]
        document = None
        for i in range(3):
            document = call(base, "POST", f"/api/v1/projects/{project}/documents",
                            {"title": f"Doc {i}", "content": "alpha beta", "embedding": [0.1, 0.2, 0.3, 0.4]}, token)["id"]
        key = call(base, "POST", f"/api/v1/projects/{project}/api-keys", {"name": "ci", "role": "editor"}, token)["id"]
        # What the deleting operations delete, apart from what the others read: a project
        # deleted early would turn every later case into a 404.
        doomed_project = call(base, "POST", "/api/v1/projects", {"name": "Doomed"}, token)["id"]
        doomed_document = call(base, "POST", f"/api/v1/projects/{project}/documents", {"title": "Doomed"}, token)["id"]
        doomed_key = call(base, "POST", f"/api/v1/projects/{project}/api-keys", {"name": "doomed"}, token)["id"]
        call(base, "POST", "/api/v1/auth/dev-login", {"email": "member@example.com"})
        call(base, "POST", f"/api/v1/projects/{project}/members", {"email": "member@example.com", "role": "viewer"}, token)
        member = [m for m in call(base, "GET", f"/api/v1/projects/{project}/members", None, token)["items"]
                  if m["email"] == "member@example.com"][0]["user_id"]
        operation = call(base, "POST", f"/api/v1/projects/{project}/operations", {"kind": "project.export", "input": {}}, token)["id"]
        config = open(os.path.join(HERE, "schemathesis.toml")).read()
        config = (config.replace("${PROJECT_ID}", project).replace("${DOCUMENT_ID}", document).replace("${KEY_ID}", key)
                  .replace("${OPERATION_ID}", operation).replace("${USER_ID}", member).replace("${TOKEN}", token).replace("${DOOMED_PROJECT_ID}", doomed_project)
                  .replace("${DOOMED_DOCUMENT_ID}", doomed_document).replace("${DOOMED_KEY_ID}", doomed_key))
        config_path = os.path.join(data_dir, "schemathesis.toml")
        open(config_path, "w").write(config)
        report = os.path.join(data_dir, "report")
        cmd = [st, "--config-file", config_path, "run", base + "/openapi.json", "--checks", "all", "--max-time", max_time,
               "--seed", seed, "--report", "ndjson", "--report-dir", report, "--no-color"]
        print("$", " ".join(cmd), flush=True)
        result = subprocess.run(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE, text=True)
        print(result.stdout, flush=True)
        found = re.search(r"(\d+) generated", result.stdout)
        cases = int(found.group(1)) if found else 0
        print(f"contract: {cases} generated test cases", flush=True)
        failed = result.returncode != 0
        if cases < 1000:
            print(f"contract: fewer than 1,000 test cases ({cases})", file=sys.stderr)
            failed = True
        errors = [l for l in open(log_path) if '"level":"ERROR"' in l]
        if errors:
            print("contract: the server logged ERROR lines:\n" + "".join(errors[:20]), file=sys.stderr)
            failed = True
        return 1 if failed else 0
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        subprocess.run(["psql", base_db, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=False)


if __name__ == "__main__":
    sys.exit(main())
