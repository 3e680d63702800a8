# What schemathesis needs to know of cordon's API that an OpenAPI document cannot say.
# Loaded by tests/api.rs (SCHEMATHESIS_HOOKS=schemathesis_hooks, this folder on PYTHONPATH)
# for `schemathesis_with_every_check_finds_nothing`; each hook says why it is here.

import base64
import os

import schemathesis
from hypothesis import strategies as st

# The user whose token the run uses (CORDON_RUN_USER).
RUN_USER = os.environ["CORDON_RUN_USER"]

# Calls that would end the run's own authority if they named its user: removing, demoting,
# locking it or revoking its tokens. The run tests them on every other user it finds or makes;
# tests/api.rs tests them on oneself by name.
SELF_ENDING = {
    ("DELETE", "/v1/users/{name}"),
    ("POST", "/v1/users/{name}/role"),
    ("POST", "/v1/users/{name}/lock"),
    ("POST", "/v1/users/{name}/revoke"),
}


@schemathesis.hook
def filter_case(context, case):
    if (case.method.upper(), case.operation.path) in SELF_ENDING:
        return (case.path_parameters or {}).get("name") != RUN_USER
    # `user` and `global` choose whose secrets, one or the other: OpenAPI cannot state that
    # two query parameters exclude each other (its parameters are independent), so the
    # combination the handlers refuse (400) is left out here.
    if case.operation.path.startswith("/v1/secrets"):
        query = case.query or {}
        return not (query.get("user") is not None and query.get("global") in (True, "true"))
    return True


@schemathesis.hook
def filter_failure(context, failure, case, response):
    # A session is its command running: when the command ends, the session is over and
    # answers 404 like one that never was (its recording stays, under /v1/recordings), and a
    # session whose command cannot start (an empty argv, a program that is not there) ends
    # within milliseconds of its 201. `ensure_resource_availability` assumes that what a POST
    # made stays until a DELETE, which does not hold for sessions, so its finding is dropped
    # for them alone; it stands for every other resource. (Once session ids are unique across
    # restarts, an ended session could answer from its recording, state "ended", and this can
    # go.)
    return not (
        type(failure).__name__ == "EnsureResourceAvailability"
        and getattr(failure, "created_with", None) == "POST /v1/sessions"
    )


def _ed25519_line(key: bytes) -> str:
    blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + key
    return "ssh-ed25519 " + base64.b64encode(blob).decode()


# An authorized_keys line is valid when its base64 blob is a public key of the type it names,
# which no JSON Schema can say; the document marks the field with this format, and valid
# lines come from here: Ed25519 keys of random bytes, with or without a comment.
schemathesis.openapi.format(
    "openssh-public-key",
    st.builds(
        lambda key, comment: _ed25519_line(key) + (" " + comment if comment else ""),
        st.binary(min_size=32, max_size=32),
        st.from_regex(r"\A[a-z0-9@.-]{0,20}\Z"),
    ),
)
