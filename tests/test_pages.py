"""Status pages and the JSON API, on builds recorded through real webhooks."""

import json

from tests.conftest import GITHUB, post_hook, push_payload

SHA = "b" * 40


def test_index_lists_repositories_with_their_latest_build(client, registered):
    empty = client.get("/").get_data(as_text=True)
    assert "octo/project" in empty
    assert "no builds yet" in empty
    post_hook(client, push_payload("octo/project", SHA, message="First line\n\nbody text"))
    page = client.get("/").get_data(as_text=True)
    assert "#1" in page
    assert "status-queued" in page


def test_repo_page_lists_builds_newest_first_and_paginates(client, registered):
    for number in range(1, 28):
        post_hook(client, push_payload("octo/project", SHA, message=f"Commit {number}\n\nsecond paragraph"))
    payload = json.loads((GITHUB / "pull_request.synchronize.json").read_bytes())
    payload["repository"]["full_name"] = "octo/project"
    post_hook(client, json.dumps(payload).encode(), event="pull_request")
    page = client.get("/octo/project").get_data(as_text=True)
    listing = page[page.index("<tbody"):]
    assert listing.index("#28") < listing.index("#27") < listing.index("#4")
    assert f"PR #{payload['number']}" in page
    assert "Commit 27" in page and "second paragraph" not in page
    assert "page 1 of 2 · 28 builds" in page
    second = client.get("/octo/project?page=2").get_data(as_text=True)
    second_listing = second[second.index("<tbody"):]
    assert "#3" in second_listing and "#28" not in second_listing
    bad = client.get("/octo/project?page=zzz")
    assert bad.status_code == 400
    assert "is not a page number; pages count from 1" in bad.get_data(as_text=True)


def test_build_page_shows_the_build_and_unknown_ones_are_404(client, registered):
    post_hook(client, push_payload("octo/project", SHA, message="Make <b>it</b> work"))
    page = client.get("/octo/project/builds/1")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Build #1" in text
    assert "Make &lt;b&gt;it&lt;/b&gt; work" in text
    assert SHA[:12] in text
    assert 'data-events="/octo/project/builds/1/events"' in text
    missing = client.get("/octo/project/builds/99")
    assert missing.status_code == 404
    assert "has no build #99" in missing.get_data(as_text=True)
    assert client.get("/nobody/nothing").status_code == 404


def test_api_lists_repos_builds_and_one_build(client, registered):
    post_hook(client, push_payload("octo/project", SHA))
    repos = client.get("/api/repos").get_json()["repos"]
    assert [r["full_name"] for r in repos] == ["octo/project"]
    assert repos[0]["latest_build"]["number"] == 1
    builds = client.get("/api/repos/octo/project/builds").get_json()
    assert builds["total"] == 1
    assert builds["builds"][0]["sha"] == SHA
    build = client.get("/api/repos/octo/project/builds/1").get_json()
    assert build["status"] == "queued"
    assert build["jobs"][0]["status"] == "queued"
    assert build["jobs"][0]["log_url"] == "http://ci.test/octo/project/builds/1/jobs/1/log.txt"
    bad = client.get("/api/repos/octo/project/builds?page=x")
    assert bad.status_code == 400
    assert bad.get_json()["error"]["message"] == "page and per_page must be whole numbers"
    missing = client.get("/api/repos/octo/nothing/builds")
    assert missing.status_code == 404
    assert missing.get_json()["error"]["message"] == "repository octo/nothing is not registered"


def test_static_assets_are_fingerprinted_and_cached_long(client):
    page = client.get("/").get_data(as_text=True)
    start = page.index("/static/slipway.css?v=")
    url = page[start:page.index('"', start)]
    with client.get(url) as response:
        assert response.status_code == 200
        assert "max-age=31536000" in response.headers["Cache-Control"]
