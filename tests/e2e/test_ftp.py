"""FTP logins with password and code typed in the one password field (the `concat` stack).

A private vsftpd on 127.0.0.1 whose PAM service has exactly the auth lines of the shipped
conf/pam.d/vsftpd (pam_listfile and pam_shells included), then the contract's account/session
lines. Plus the same stack through the libpam driver, for what a client can't see (prompts,
requested fail delay).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil

import pytest

from conftest import ACCOUNT_SESSION, prompts
from ftp import (
    FIELD_PROMPT,
    ProFtpd,
    PureFtpd,
    UnpackError,
    Vsftpd,
    ftp_list_home,
    ftp_login,
    private_dir,
    raw_login,
    reply_lines,
    unpack_daemon,
    wrong_code,
)

LOGGED_IN = "230 Login successful."
REFUSED = "530 Login incorrect."

# Everything vsftpd 3.0.3 says during greeting, USER, PASS, QUIT.
VSFTPD_REPLIES = {
    "220 (vsFTPd 3.0.3)",
    "331 Please specify the password.",
    LOGGED_IN,
    REFUSED,
    "221 Goodbye.",
}


@pytest.fixture
def vsftpd_server(twofa):
    """Starts a vsftpd with the shipped stack (after the test wrote its policy)."""
    servers = []

    def start() -> Vsftpd:
        server = Vsftpd(twofa.service_text("vsftpd"))
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def vsftpd(twofa, vsftpd_server):
    twofa.write_config()
    return vsftpd_server()


@pytest.fixture
def enrolled(make_user, twofa):
    user = make_user()
    secret = twofa.enroll(user.name)
    return user, secret


def put_file(user, name: str) -> None:
    path = user.home / name
    path.write_text("hello\n")
    entry = pwd.getpwnam(user.name)
    os.chown(path, entry.pw_uid, entry.pw_gid)


# --------------------------------------------------------------------------------------------
# vsftpd


def test_password_followed_by_code_logs_in_and_lists_the_home_directory(twofa, vsftpd, enrolled):
    user, secret = enrolled
    put_file(user, "twofa-e2e-hello.txt")
    names = ftp_list_home(vsftpd.port, user.name, user.password + twofa.code(secret))
    assert "twofa-e2e-hello.txt" in names


def test_wrong_code_is_refused(twofa, vsftpd, enrolled):
    user, secret = enrolled
    assert ftp_login(vsftpd.port, user.name, user.password + wrong_code(twofa, secret)) == REFUSED


def test_wrong_password_with_right_code_is_refused_and_does_not_spend_the_code(twofa, vsftpd, enrolled):
    user, secret = enrolled
    code = twofa.code(secret)
    assert ftp_login(vsftpd.port, user.name, "not-" + user.password + code) == REFUSED
    assert ftp_login(vsftpd.port, user.name, user.password + code) == LOGGED_IN


def test_password_alone_is_refused(twofa, vsftpd, enrolled):
    user, _secret = enrolled
    assert ftp_login(vsftpd.port, user.name, user.password) == REFUSED


def test_replayed_code_is_refused(twofa, vsftpd, enrolled):
    user, secret = enrolled
    field = user.password + twofa.code(secret)
    assert ftp_login(vsftpd.port, user.name, field) == LOGGED_IN
    assert ftp_login(vsftpd.port, user.name, field) == REFUSED


def test_wrong_code_and_wrong_password_get_the_same_reply(twofa, vsftpd, enrolled):
    user, secret = enrolled
    bad_code, _ = raw_login(vsftpd.port, user.name, user.password + wrong_code(twofa, secret))
    bad_password, _ = raw_login(vsftpd.port, user.name, "x" + user.password + twofa.code(secret))
    assert bad_code == bad_password == REFUSED


def test_nothing_from_the_module_reaches_the_ftp_control_connection(twofa, vsftpd, enrolled):
    user, secret = enrolled
    failed_reply, failed = raw_login(vsftpd.port, user.name, user.password + wrong_code(twofa, secret))
    ok_reply, ok = raw_login(vsftpd.port, user.name, user.password + twofa.code(secret))
    assert (failed_reply, ok_reply) == (REFUSED, LOGGED_IN)
    for transcript, pass_reply in ((failed, REFUSED), (ok, LOGGED_IN)):
        lines = reply_lines(transcript)
        assert lines == [
            "220 (vsFTPd 3.0.3)",
            "331 Please specify the password.",
            pass_reply,
            "221 Goodbye.",
        ], transcript
        assert set(lines) <= VSFTPD_REPLIES
        for word in (b"pam_twofa", b"twofa", b"erification", b"code", b"panic"):
            assert word not in transcript.lower(), transcript


def test_unenrolled_user_logs_in_with_password_alone_when_policy_allows(twofa, vsftpd_server, make_user):
    twofa.write_config(unenrolled="allow")
    server = vsftpd_server()
    user = make_user()
    put_file(user, "twofa-e2e-allowed.txt")
    assert "twofa-e2e-allowed.txt" in ftp_list_home(server.port, user.name, user.password)


def test_unenrolled_user_is_refused_when_policy_denies(twofa, vsftpd, make_user):
    user = make_user()
    assert ftp_login(vsftpd.port, user.name, user.password) == REFUSED
    assert ftp_login(vsftpd.port, user.name, user.password + "123456") == REFUSED


def test_eight_digit_sha256_enrollment_takes_the_last_eight_characters_as_the_code(twofa, vsftpd, make_user):
    user = make_user()
    params = {"algorithm": "SHA256", "digits": 8}
    secret = twofa.enroll(user.name, **params)
    code = twofa.code(secret, **params)
    # The policy default is 6 digits: only an 8-digit split gets the password right.
    assert ftp_login(vsftpd.port, user.name, user.password + wrong_code(twofa, secret, **params)) == REFUSED
    assert ftp_login(vsftpd.port, user.name, user.password + code[-6:]) == REFUSED
    assert ftp_login(vsftpd.port, user.name, user.password + code) == LOGGED_IN


# --------------------------------------------------------------------------------------------
# the same stack through libpam (what an FTP client can't see)


@pytest.fixture
def ftp_stack(twofa):
    """The vsftpd stack as a service in a private PAM confdir: (service, confdir)."""
    twofa.write_config()
    service = "twofa-e2e-ftp-" + secrets.token_hex(4)
    confdir = twofa.pam_confdir(service, twofa.auth_lines("vsftpd") + ACCOUNT_SESSION)
    return service, confdir


def one_try(result: dict) -> dict:
    assert len(result["tries"]) == 1, result
    return result["tries"][0]


def test_wrong_code_and_wrong_password_show_the_same_prompt_and_delay(twofa, driver, ftp_stack, enrolled):
    service, confdir = ftp_stack
    user, secret = enrolled
    bad_code = one_try(driver(service, user.name, [user.password + wrong_code(twofa, secret)], confdir))
    bad_password = one_try(driver(service, user.name, ["x" + user.password + twofa.code(secret)], confdir))
    ok = one_try(driver(service, user.name, [user.password + twofa.code(secret)], confdir))

    assert ok["result"] == "PAM_SUCCESS"
    assert bad_code["result"] == bad_password["result"] == "PAM_AUTH_ERR"
    assert prompts(bad_code) == prompts(bad_password) == prompts(ok) == [("echo_off", FIELD_PROMPT)]
    assert bad_code["fail_delay_requested_usec"] == bad_password["fail_delay_requested_usec"] == 2_000_000
    # What an application sleeps: libpam randomizes the largest request to [0.5, 1.5) times it.
    for t in (bad_code, bad_password):
        assert 1_000_000 <= t["fail_delay_usec"] < 3_000_000, t


def test_unknown_name_shows_the_same_prompt_and_delay_as_an_enrolled_user(twofa, driver, ftp_stack, enrolled):
    service, confdir = ftp_stack
    user, secret = enrolled
    unknown = "twofa-e2e-nobody-" + secrets.token_hex(4)
    with pytest.raises(KeyError):
        pwd.getpwnam(unknown)
    known = one_try(driver(service, user.name, [user.password + wrong_code(twofa, secret)], confdir))
    nobody = one_try(driver(service, unknown, [user.password + twofa.code(secret)], confdir))
    assert known["result"] == nobody["result"] == "PAM_AUTH_ERR"
    assert prompts(known) == prompts(nobody) == [("echo_off", FIELD_PROMPT)]
    assert known["fail_delay_requested_usec"] == nobody["fail_delay_requested_usec"] == 2_000_000
    assert not any(unknown in f for f in twofa.storage_files())


# --------------------------------------------------------------------------------------------
# ProFTPD and pure-ftpd (Debian's packages conflict with vsftpd: see ftp.py)


def _unpacked(package: str):
    workdir = private_dir("twofa-e2e-deb-")
    try:
        yield unpack_daemon(package, workdir)
    except UnpackError as e:
        pytest.skip(f"{package} can't be run here: {e}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def proftpd_daemon():
    yield from _unpacked("proftpd-core")


@pytest.fixture(scope="session")
def pureftpd_daemon():
    yield from _unpacked("pure-ftpd")


@pytest.fixture
def proftpd(twofa, proftpd_daemon):
    twofa.write_config()
    server = ProFtpd(proftpd_daemon, twofa.service_text("proftpd")).start()
    yield server
    server.stop()


@pytest.fixture
def pureftpd(twofa, pureftpd_daemon):
    twofa.write_config()
    server = PureFtpd(pureftpd_daemon, twofa.service_text("pure-ftpd")).start()
    yield server
    server.stop()


def test_proftpd_password_followed_by_code_logs_in_and_lists_the_home_directory(twofa, proftpd, enrolled):
    user, secret = enrolled
    put_file(user, "twofa-e2e-pro.txt")
    assert "twofa-e2e-pro.txt" in ftp_list_home(proftpd.port, user.name, user.password + twofa.code(secret))


def test_proftpd_refuses_a_wrong_code_and_the_password_alone(twofa, proftpd, enrolled):
    user, secret = enrolled
    # The password alone must not get through mod_auth_unix (the "*" in AuthOrder).
    assert ftp_login(proftpd.port, user.name, user.password).startswith("530 ")
    assert ftp_login(proftpd.port, user.name, user.password + wrong_code(twofa, secret)).startswith("530 ")
    assert ftp_login(proftpd.port, user.name, user.password + twofa.code(secret)).startswith("230 ")


def test_pureftpd_password_followed_by_code_logs_in_and_lists_the_home_directory(twofa, pureftpd, enrolled):
    user, secret = enrolled
    put_file(user, "twofa-e2e-pure.txt")
    assert "twofa-e2e-pure.txt" in ftp_list_home(pureftpd.port, user.name, user.password + twofa.code(secret))


def test_pureftpd_refuses_a_wrong_code_and_the_password_alone(twofa, pureftpd, enrolled):
    user, secret = enrolled
    assert ftp_login(pureftpd.port, user.name, user.password).startswith("530 ")
    assert ftp_login(pureftpd.port, user.name, user.password + wrong_code(twofa, secret)).startswith("530 ")
    assert ftp_login(pureftpd.port, user.name, user.password + twofa.code(secret)).startswith("230 ")
