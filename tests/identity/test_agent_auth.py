"""Agent sign-in: /api/v1/auth/token, refresh rotation, logout, lockout and /v3/auth/signin."""

import pytest
from django.contrib.auth.hashers import make_password
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from identity.models import User
from tests.conftest import PASSWORD
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

UNAUTHENTICATED = {
    "error": {
        "code": "not_authenticated",
        "message": "Authentication credentials were not provided or are not valid.",
    }
}


def sign_in(client, email, password, **extra):
    return client.post(
        "/api/v1/auth/token", {"email": email, "password": password}, format="json", **extra
    )


def test_sign_in_returns_an_access_and_refresh_pair(api_client, agent_user):
    # when
    response = sign_in(api_client, agent_user.email, PASSWORD)

    # then
    assert response.status_code == 200
    assert set(response.json()) == {"access", "refresh"}
    assert OutstandingToken.objects.filter(user=agent_user).count() == 1


def test_sign_in_email_is_case_insensitive(api_client, agent_user):
    response = sign_in(api_client, agent_user.email.upper(), PASSWORD)

    assert response.status_code == 200


@pytest.mark.parametrize("case", ["unknown email", "wrong password", "inactive user"])
def test_sign_in_failures_share_one_401_body_and_issue_nothing(api_client, agent_user, case):
    # given
    email, password = agent_user.email, PASSWORD
    if case == "unknown email":
        email = "nobody@example.test"
    elif case == "wrong password":
        password = "not the password"
    else:
        agent_user.is_active = False
        agent_user.save()

    # when
    response = sign_in(api_client, email, password)

    # then
    assert response.status_code == 401
    assert response.json() == UNAUTHENTICATED
    assert OutstandingToken.objects.count() == 0


def test_sign_in_rejects_missing_fields_with_field_messages(api_client):
    response = api_client.post("/api/v1/auth/token", {"email": "a@b.test"}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "code": "invalid",
            "message": "The request is invalid.",
            "fields": {"password": ["This field is required."]},
        }
    }


def test_access_token_authenticates_with_bearer_and_jwt_prefixes(api_client, agent_user, org):
    # given
    access = sign_in(api_client, agent_user.email, PASSWORD).json()["access"]

    # when / then: the token works as a bearer on an agent route, either prefix
    for prefix in ("Bearer", "JWT"):
        api_client.credentials(HTTP_AUTHORIZATION=f"{prefix} {access}")
        response = api_client.get("/api/v1/orgs")
        assert response.status_code == 200, (prefix, response.content)


def test_the_orgs_list_queries_do_not_grow_with_the_memberships(
    agent_client, agent_user, django_assert_num_queries
):
    # given
    with django_assert_num_queries(2):  # the agent, the memberships with their orgs
        agent_client.get("/api/v1/orgs")

    # when
    for role in ("owner", "admin", "agent") * 3:
        MembershipFactory(user=agent_user, role=role)

    # then
    with django_assert_num_queries(2):
        response = agent_client.get("/api/v1/orgs")
    assert len(response.json()) == 10


def test_refresh_rotates_and_the_rotated_token_is_refused(api_client, agent_user):
    # given
    refresh = sign_in(api_client, agent_user.email, PASSWORD).json()["refresh"]

    # when
    rotated = api_client.post("/api/v1/auth/refresh", {"refresh": refresh}, format="json")
    reused = api_client.post("/api/v1/auth/refresh", {"refresh": refresh}, format="json")

    # then
    assert rotated.status_code == 200
    assert set(rotated.json()) == {"access", "refresh"}
    assert rotated.json()["refresh"] != refresh
    assert reused.status_code == 401
    assert reused.json() == UNAUTHENTICATED
    assert BlacklistedToken.objects.count() == 1


def test_refresh_is_refused_for_an_inactive_or_deleted_user(api_client):
    # given
    inactive = UserFactory(password=PASSWORD)
    deleted = UserFactory(password=PASSWORD)
    inactive_refresh = sign_in(api_client, inactive.email, PASSWORD).json()["refresh"]
    deleted_refresh = sign_in(api_client, deleted.email, PASSWORD).json()["refresh"]
    inactive.is_active = False
    inactive.save()
    deleted.delete()

    # when / then
    for refresh in (inactive_refresh, deleted_refresh):
        response = api_client.post("/api/v1/auth/refresh", {"refresh": refresh}, format="json")
        assert response.status_code == 401
        assert response.json() == UNAUTHENTICATED


def test_access_token_is_refused_as_a_refresh_token(api_client, agent_user):
    access = sign_in(api_client, agent_user.email, PASSWORD).json()["access"]

    response = api_client.post("/api/v1/auth/refresh", {"refresh": access}, format="json")

    assert response.status_code == 401
    assert BlacklistedToken.objects.count() == 0


def test_refresh_token_is_refused_as_an_access_token(api_client, agent_user, org):
    refresh = sign_in(api_client, agent_user.email, PASSWORD).json()["refresh"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {refresh}")

    response = api_client.get("/api/v1/orgs")

    assert response.status_code == 401
    assert response.json() == UNAUTHENTICATED


def test_logout_blacklists_the_refresh_token(api_client, agent_user):
    # given
    refresh = sign_in(api_client, agent_user.email, PASSWORD).json()["refresh"]

    # when
    logout = api_client.post("/api/v1/auth/logout", {"refresh": refresh}, format="json")
    after = api_client.post("/api/v1/auth/refresh", {"refresh": refresh}, format="json")

    # then
    assert logout.status_code == 204
    assert after.status_code == 401
    assert BlacklistedToken.objects.count() == 1


def test_logout_with_garbage_is_401_and_writes_nothing(api_client):
    response = api_client.post("/api/v1/auth/logout", {"refresh": "garbage"}, format="json")

    assert response.status_code == 401
    assert BlacklistedToken.objects.count() == 0


def test_every_spelling_of_an_agents_email_signs_in_and_counts_toward_one_lockout(api_client):
    # given: an agent whose address has an internationalised domain
    agent = UserFactory(email="ops@b\u00fccher.de")
    spellings = [
        "ops@bu\u0308cher.de",
        "OPS@xn--bcher-kva.de",
        "ops@b\u00fccher.d\uff45",
        "Ops@B\u00dcCHER.de",
        "ops@b\u00fccher.de",
    ]
    assert sign_in(api_client, spellings[1], PASSWORD).status_code == 200

    # when: five guesses, each under another spelling
    for spelling in spellings:
        assert sign_in(api_client, spelling, "wrong").status_code == 401

    # then: one account, one counter: locked, whichever spelling comes next
    assert sign_in(api_client, agent.email, PASSWORD).status_code == 429


@pytest.mark.redis
def test_lockout_after_five_failures_refuses_even_the_right_password(api_client, agent_user):
    # given
    for _ in range(5):
        assert sign_in(api_client, agent_user.email, "wrong").status_code == 401

    # when
    locked = sign_in(api_client, agent_user.email, PASSWORD)

    # then
    assert locked.status_code == 429
    assert int(locked["Retry-After"]) > 0
    assert locked.json()["error"]["code"] == "throttled"
    assert OutstandingToken.objects.count() == 0


@pytest.mark.redis
def test_lockout_is_not_reset_by_a_changed_forwarded_for(api_client, agent_user, settings):
    # given: five failures from one address
    for _ in range(5):
        sign_in(api_client, agent_user.email, "wrong", HTTP_X_FORWARDED_FOR="203.0.113.7")

    # when: the client claims another address, trusted or not
    untrusted = sign_in(api_client, agent_user.email, PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.1")
    settings.TRUSTED_PROXY_COUNT = 1
    trusted = sign_in(api_client, agent_user.email, PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.2")

    # then: the account lock holds whatever the address
    assert untrusted.status_code == 429
    assert trusted.status_code == 429


@pytest.mark.redis
def test_ip_lockout_covers_other_accounts_from_the_same_address(api_client, settings):
    # given
    settings.LOCKOUT_IP_MAX_FAILURES = 3
    victim = UserFactory(password=PASSWORD)
    for n in range(3):
        sign_in(api_client, f"guess{n}@example.test", "wrong")

    # when
    response = sign_in(api_client, victim.email, PASSWORD)

    # then
    assert response.status_code == 429


@pytest.mark.redis
def test_successful_sign_in_resets_the_account_counter(api_client, agent_user):
    for _ in range(4):
        sign_in(api_client, agent_user.email, "wrong")
    assert sign_in(api_client, agent_user.email, PASSWORD).status_code == 200

    for _ in range(4):
        sign_in(api_client, agent_user.email, "wrong")
    assert sign_in(api_client, agent_user.email, PASSWORD).status_code == 200


def test_tiledesk_signin_answers_tiledesk_shape(api_client, agent_user, org):
    # when
    response = api_client.post(
        "/v3/auth/signin", {"email": agent_user.email, "password": PASSWORD}, format="json"
    )

    # then
    body = response.json()
    assert response.status_code == 200
    assert body["success"] is True
    assert body["token"].startswith("JWT ")
    assert body["user"] == {
        "_id": str(agent_user.pk),
        "email": agent_user.email,
        "firstname": agent_user.first_name,
        "lastname": agent_user.last_name,
    }
    api_client.credentials(HTTP_AUTHORIZATION=body["token"])
    assert api_client.get("/api/v1/orgs").status_code == 200


def test_tiledesk_signin_failure_has_success_false(api_client, agent_user):
    response = api_client.post(
        "/v3/auth/signin", {"email": agent_user.email, "password": "wrong"}, format="json"
    )

    assert response.status_code == 401
    assert response.json() == {**UNAUTHENTICATED, "success": False}


@pytest.mark.redis
def test_tiledesk_signin_shares_the_lockout(api_client, agent_user):
    for _ in range(5):
        api_client.post(
            "/v3/auth/signin", {"email": agent_user.email, "password": "x"}, format="json"
        )

    response = sign_in(api_client, agent_user.email, PASSWORD)

    assert response.status_code == 429


@pytest.mark.redis
def test_successful_sign_ins_from_one_address_never_lock_it(api_client, agent_user, settings):
    # given an office behind one address, whose attempts are counted before they are checked
    settings.LOCKOUT_IP_MAX_FAILURES = 3

    # when its people sign in more often than the address may fail
    answers = [sign_in(api_client, agent_user.email, PASSWORD).status_code for _ in range(6)]

    # then each success gave its attempt back
    assert answers == [200] * 6


@pytest.mark.redis
def test_guesses_in_flight_count_before_their_password_is_checked(api_client, agent_user):
    # given five guesses already counted and still being checked (sent at once, say)
    from identity import lockout

    subjects = lockout.subjects_for(email=agent_user.email, ip="127.0.0.1")
    for _ in range(5):
        lockout.lockout_attempt_begin(subjects)

    # when a sixth arrives, with the right password
    response = sign_in(api_client, agent_user.email, PASSWORD)

    # then it is refused unchecked, and the account is locked
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert OutstandingToken.objects.count() == 0
    assert lockout.lockout_remaining(subjects) > 0


@pytest.mark.postgres_only(reason="needs PostgreSQL for real threads on one database")
@pytest.mark.django_db(transaction=True)
def test_twenty_guesses_sent_at_once_check_at_most_five_passwords(monkeypatch):
    # given an account, and a password check slow enough that the guesses overlap
    import time

    from identity import services
    from tests.concurrency import in_parallel

    user = UserFactory(password=PASSWORD)
    checked = []
    real_authenticate = services.authenticate

    def slow_authenticate(**credentials):
        checked.append(credentials["password"])
        time.sleep(0.2)
        return real_authenticate(**credentials)

    monkeypatch.setattr(services, "authenticate", slow_authenticate)
    answers = []

    def guess(n: int) -> None:
        from rest_framework.test import APIClient

        answers.append(sign_in(APIClient(), user.email, f"wrong-{n}").status_code)

    # when: twenty wrong guesses at once (all wrong: a right one among the first five would
    # succeed and, as documented, clear the account's count, letting a few more be checked)
    in_parallel(guess, 20)

    # then at most the limit's worth were checked, and no guess got through unchecked
    assert len(checked) <= 5
    assert answers.count(429) >= 15
    assert set(answers) <= {401, 429}


def test_a_new_password_ends_every_session_the_old_one_started(api_client, agent_user):
    # given two sessions signed in with the old password (say, a laptop and a stolen token)
    first = sign_in(api_client, agent_user.email, PASSWORD).json()
    second = sign_in(api_client, agent_user.email, PASSWORD).json()

    # when the agent changes the password (admin's password form, a reset: set_password + save)
    agent_user.set_password("a brand new passphrase")
    agent_user.save()

    # then neither session's refresh nor access token works, with the uniform 401
    for tokens in (first, second):
        refreshed = api_client.post(
            "/api/v1/auth/refresh", {"refresh": tokens["refresh"]}, format="json"
        )
        assert refreshed.status_code == 401
        assert refreshed.json() == UNAUTHENTICATED
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
        used = api_client.get("/api/v1/orgs")
        assert used.status_code == 401
        assert used.json() == UNAUTHENTICATED
    api_client.credentials()
    # and the new password starts a session that works
    fresh = sign_in(api_client, agent_user.email, "a brand new passphrase").json()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {fresh['access']}")
    assert api_client.get("/api/v1/orgs").status_code == 200


def test_a_refresh_token_the_password_change_missed_is_refused_all_the_same(api_client, agent_user):
    # given: a session of the old password whose latest refresh token the change did not see
    # (a rotation that committed just after the change listed the tokens to blacklist), which
    # is what a password written without the revocation leaves behind
    tokens = sign_in(api_client, agent_user.email, PASSWORD).json()
    User.objects.filter(pk=agent_user.pk).update(password=make_password("a brand new one"))

    # when the thief rotates it
    refreshed = api_client.post(
        "/api/v1/auth/refresh", {"refresh": tokens["refresh"]}, format="json"
    )

    # then the old password's token starts no chain under the new one
    assert refreshed.status_code == 401
    assert refreshed.json() == UNAUTHENTICATED
    assert OutstandingToken.objects.count() == 1


def test_saving_a_user_without_a_new_password_keeps_their_sessions(api_client, agent_user):
    tokens = sign_in(api_client, agent_user.email, PASSWORD).json()

    agent_user.first_name = "Renamed"
    agent_user.save()

    refreshed = api_client.post(
        "/api/v1/auth/refresh", {"refresh": tokens["refresh"]}, format="json"
    )
    assert refreshed.status_code == 200
