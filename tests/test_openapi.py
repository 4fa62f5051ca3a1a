"""``/api/openapi.json`` describes every API and webhook route, and the live app, fuzzed
against it with schemathesis, never answers 5xx."""

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from ci import store
from tests.conftest import add_user, post_hook, push_payload, token_headers

HTTP_METHODS = {"get", "put", "post", "delete", "patch"}
FLASK_PARAMETER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
#: Pages the API's answers link to (a job's `log_url`), described with the API.
DESCRIBED_PAGES = {"logs.log_text"}


def test_every_api_and_webhook_route_is_described_with_its_methods(app, client):
    document = client.get("/api/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(("/api/", "/hooks/")) or rule.endpoint in DESCRIBED_PAGES:
            path = FLASK_PARAMETER.sub(r"{\1}", rule.rule)
            routes.setdefault(path, set()).update(
                method.lower() for method in rule.methods - {"HEAD", "OPTIONS"})
    described = {path: set(item) & HTTP_METHODS for path, item in document["paths"].items()}
    assert described == routes
    for path, item in document["paths"].items():
        for method in set(item) & HTTP_METHODS:
            declared = {ref["$ref"].rsplit("/", 1)[1] if "$ref" in ref else ref["name"]
                        for ref in item[method].get("parameters", [])}
            named = {document["components"]["parameters"].get(key, {}).get("name", key)
                     for key in declared}
            assert set(re.findall(r"{(\w+)}", path)) <= named, (method, path)


@pytest.fixture
def fuzzed(app, session, registered, git_repo, client):
    """The app with a repository that has a commit, a build with a job, and two users."""
    git_repo.commit({"a.txt": "1"})
    assert post_hook(client, push_payload("octo/project", "a" * 40)).status_code == 202
    store.plan_steps(session, store.get_build(session, registered, 1).jobs[0], ["test"], None)
    session.commit()
    return schemathesis.openapi.from_wsgi("/api/openapi.json", app)


@pytest.fixture
def writer(session, registered) -> dict[str, str]:
    return token_headers(session, add_user(session, "dev", grants={registered: "write"}))


@pytest.fixture
def admin(session) -> dict[str, str]:
    return token_headers(session, add_user(session, "root", admin=True))


#: Path parameters naming what ``fuzzed`` made, so fuzzed bodies and queries reach handlers.
KNOWN = {"owner": "octo", "name": "project", "number": 1, "job_number": 1}
FUZZ = settings(max_examples=12, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


def fuzz(schema, headers: dict[str, str], paths: str = ".*") -> int:
    """Send each operation valid requests (for what exists) and invalid ones; count them."""
    sent = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if not re.fullmatch(paths, operation.path):
            continue
        known = ({"name": "github"} if operation.path.startswith("/hooks/") else
                 {key: value for key, value in KNOWN.items() if f"{{{key}}}" in operation.path})
        strategies = [operation.as_strategy(path_parameters=known)]
        if list(operation.iter_parameters()) or operation.body:  # else nothing can be invalid
            strategies.append(operation.as_strategy(GenerationMode.NEGATIVE))
        for strategy in strategies:
            @FUZZ
            @given(case=strategy)
            def check(case) -> None:
                nonlocal sent
                sent += 1
                case.validate_response(case.call(headers=headers), checks=[not_a_server_error])

            check()
    return sent


def test_no_request_of_a_writer_makes_the_server_fail(fuzzed, writer):
    assert fuzz(fuzzed, writer) > 300


def test_no_request_of_an_admin_makes_the_server_fail(fuzzed, admin):
    assert fuzz(fuzzed, admin, paths=r"/api/repos(/\{owner\}/\{name\})?") > 50
