"""Users, API tokens and repository access: the CLI, signing in and out, CSRF and the
sign-in throttle, against a real database and Redis."""

import html

from sqlalchemy import select

from ci import store
from ci.accounts import users
from ci.pipeline import keys
from ci.store.models import ApiToken, User
from tests.conftest import PASSWORD, add_user, csrf_of, sign_in


def test_users_tokens_and_grants_from_the_cli(cli, git_repo):
    assert "no users" in cli("user", "list").output
    added = cli("user", "add", "ada", "--admin", stdin="a long password\n")
    assert added.exit_code == 0, added.output
    assert "user ada added (admin)" in added.output
    assert cli("user", "add", "bob", stdin="long enough\n").exit_code == 0
    short = cli("user", "add", "cy", stdin="short\n")
    assert short.exit_code == 1
    assert "the password is shorter than 8 characters" in short.output
    bad = cli("user", "add", "a b", stdin="long enough\n")
    assert "is not a user name" in bad.output
    again = cli("user", "add", "bob", stdin="long enough\n")
    assert "user bob exists already" in again.output
    listed = cli("user", "list").output.splitlines()
    assert [line.split("\t")[:2] for line in listed] == [["ada", "admin"], ["bob", "user"]]

    created = cli("token", "create", "bob", "--name", "laptop")
    assert created.exit_code == 0
    plain = created.stdout.strip()
    assert plain.startswith("slp_") and len(plain) > 40
    assert "it is shown only now" in created.stderr
    tokens = cli("token", "list").output
    assert f"1\t{plain[:12]}…\tbob\tlaptop\t" in tokens
    assert plain not in tokens
    assert "there is no user nobody" in cli("token", "create", "nobody").output

    cli("repo", "add", "octo/secret", "--clone-url", str(git_repo.path), "--secret", "s",
        "--private")
    assert "octo/secret\tgithub" in cli("repo", "list").output
    assert cli("repo", "list").output.rstrip().endswith("\tprivate")
    granted = cli("repo", "grant", "octo/secret", "bob", "--permission", "write")
    assert "bob may now write octo/secret" in granted.output
    assert "bob no longer has access" in cli("repo", "revoke", "octo/secret", "bob").output
    assert "bob had no access" in cli("repo", "revoke", "octo/secret", "bob").output
    assert cli("repo", "grant", "octo/secret", "bob", "--permission", "own").exit_code == 2

    assert "revoked API token 1" in cli("token", "revoke", "1").output
    assert "there is no API token 1" in cli("token", "revoke", "1").output
    assert "removed user bob" in cli("user", "remove", "bob").output
    assert "there is no user bob" in cli("user", "remove", "bob").output


def test_passwords_and_tokens_are_stored_hashed(session):
    user = users.add_user(session, "ada", PASSWORD)
    _token, plain = users.create_token(session, user, "ci")
    stored_user = session.scalar(select(User))
    stored_token = session.scalar(select(ApiToken))
    assert stored_user.password_hash.startswith("scrypt:")
    assert PASSWORD not in stored_user.password_hash
    assert plain not in stored_token.token_hash and stored_token.prefix == plain[:12]
    assert users.user_for_token(session, plain).name == "ada"
    assert users.user_for_token(session, plain + "x") is None
    assert users.authenticate(session, "ada", PASSWORD).name == "ada"
    assert users.authenticate(session, "ada", PASSWORD + "x") is None
    assert users.authenticate(session, "nobody", PASSWORD) is None


def test_sign_in_sets_a_protected_cookie_and_sign_out_ends_it(client, session):
    add_user(session, "ada")
    page = client.get("/login")
    assert page.status_code == 200
    assert 'name="csrf_token"' in page.get_data(as_text=True)
    signed_in = sign_in(client, "ada")
    assert signed_in.status_code == 302
    assert signed_in.headers["Location"] == "/"
    cookie = signed_in.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    home = client.get("/").get_data(as_text=True)
    assert "Signed in as ada." in home and "Sign out" in home

    signed_out = client.post("/logout", data={"csrf_token": csrf_of(client, "/")})
    assert signed_out.status_code == 302
    assert "Sign in" in client.get("/").get_data(as_text=True)


def test_sign_in_goes_back_only_to_pages_of_this_site(client, session):
    add_user(session, "ada")
    token = csrf_of(client)
    form = {"name": "ada", "password": PASSWORD, "csrf_token": token}
    back = client.post("/login?next=/octo/project/builds/1", data=form)
    assert back.headers["Location"] == "/octo/project/builds/1"
    away = client.post("/login?next=//evil.example/x", data={**form, "csrf_token":
                                                               csrf_of(client)})
    assert away.headers["Location"] == "/"


def test_a_wrong_password_is_refused(client, session):
    add_user(session, "ada")
    refused = sign_in(client, "ada", "not the password")
    assert refused.status_code == 401
    assert "Wrong user name or password." in refused.get_data(as_text=True)
    assert "Sign out" not in client.get("/").get_data(as_text=True)


def test_five_failed_sign_ins_block_that_user_from_that_address(client, session, redis_client):
    add_user(session, "ada")
    add_user(session, "bob")
    for _ in range(5):
        assert sign_in(client, "ada", "guess").status_code == 401
    blocked = sign_in(client, "ada")  # even the right password, for now
    assert blocked.status_code == 429
    assert 890 <= int(blocked.headers["Retry-After"]) <= 900
    assert "too many failed sign-ins as ada" in blocked.get_data(as_text=True)
    assert sign_in(client, "bob").status_code == 302  # other users are not affected
    assert redis_client.ttl(keys.sign_in_failures("ada", "127.0.0.1")) > 0
    # Another address (or the window passing: the key expires) may try again.
    other = client.post("/login", environ_base={"REMOTE_ADDR": "10.0.0.9"},
                        data={"name": "ada", "password": PASSWORD,
                              "csrf_token": csrf_of(client)})
    assert other.status_code == 302


def test_a_form_without_its_csrf_token_is_refused(client, session, registered):
    add_user(session, "ada", grants={registered: "write"})
    sign_in(client, "ada")
    for data in ({}, {"csrf_token": "forged"}):
        refused = client.post("/octo/project/builds", data=data)
        assert refused.status_code == 400
        assert ("the form's security token (CSRF) is missing or out of date"
                in html.unescape(refused.get_data(as_text=True)))
    assert client.post("/login", data={"name": "ada", "password": PASSWORD}).status_code == 400


def test_the_api_with_the_session_cookie_needs_the_csrf_header(client, session, registered):
    add_user(session, "ada", grants={registered: "write"})
    sign_in(client, "ada")
    path = "/api/repos/octo/project/secrets/TOKEN"
    refused = client.put(path, json={"value": "a value"})
    assert refused.status_code == 400
    assert "needs the session's CSRF token in the X-CSRF-Token header" in \
        refused.get_json()["error"]["message"]
    allowed = client.put(path, json={"value": "a value"},
                         headers={"X-CSRF-Token": csrf_of(client, "/")})
    assert allowed.get_json() == {"secrets": ["TOKEN"]}
    assert client.get("/api/user").get_json() == {"name": "ada", "admin": False}


def test_removing_a_user_signs_them_out(client, session):
    add_user(session, "ada")
    sign_in(client, "ada")
    assert client.get("/api/user").status_code == 200
    store.remove_user(session, "ada")
    add_user(session, "ada")  # the same name again is another account
    assert client.get("/api/user").status_code == 401


def test_behind_a_proxy_the_forwarded_address_is_throttled(app, client, session, redis_client):

    from ci import create_app

    add_user(session, "ada")
    settings = app.extensions["slipway"].settings
    proxied = create_app({**{f: getattr(settings, f) for f in settings.__dataclass_fields__},
                          "proxy_hops": 1}).test_client()
    forwarded = {"X-Forwarded-For": "203.0.113.7"}
    for _ in range(5):
        proxied.post("/login", headers=forwarded, data={
            "name": "ada", "password": "guess", "csrf_token": csrf_of(proxied)})
    assert redis_client.ttl(keys.sign_in_failures("ada", "203.0.113.7")) > 0
    assert not redis_client.exists(keys.sign_in_failures("ada", "127.0.0.1"))
    proxied.application.extensions["slipway"].engine.dispose()
