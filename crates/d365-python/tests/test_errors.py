"""Errors: the PEP 249 class for each failure, with status, code and request id; no secrets."""

from __future__ import annotations

import decimal
import os
import pathlib
import subprocess
import uuid

import pytest

import d365

SECRET = "emu~integration~secret~0001"


def test_bad_sql_is_a_programming_error_with_the_nearest_name(conn: d365.Connection) -> None:
    with pytest.raises(d365.ProgrammingError, match="contact") as e:
        conn.execute("SELECT fullname FROM contcat")
    assert e.value.status is None and e.value.code is None
    with pytest.raises(d365.ProgrammingError, match="fullname"):
        conn.execute("SELECT fulname FROM contact")
    with pytest.raises(d365.ProgrammingError, match="syntax"):
        conn.execute("SELEC 1")


def test_bad_connection_strings_are_interface_errors() -> None:
    with pytest.raises(d365.InterfaceError, match="OrganizationUrl"):
        d365.connect("AuthScheme=AzureAD")
    with pytest.raises(d365.InterfaceError, match="OrganisationUrl"):
        d365.connect("OrganisationUrl=https://x.crm.dynamics.com")
    with pytest.raises(d365.InterfaceError):
        d365.connect(42)  # type: ignore[arg-type]


def test_forbidden_table_is_operational_with_status_and_code(emulator: d365.Emulator) -> None:
    # The integration app's role cannot read new_widget.
    with d365.connect(emulator.secret_connection_string("integration")) as conn:
        with pytest.raises(d365.OperationalError, match=r"(?i)prvReadnew_widget") as e:
            conn.execute("SELECT * FROM new_widget").fetchall()
        assert e.value.status == 403
        assert e.value.code == "0x80040220"
        assert e.value.request_id
        assert SECRET not in str(e.value) and SECRET not in repr(e.value)


def test_wrong_secret_is_operational_and_never_shown(emulator: d365.Emulator) -> None:
    wrong = "emu~not~the~secret~42"
    text = emulator.secret_connection_string("integration").replace(SECRET, wrong)
    conn = d365.connect(text)
    assert wrong not in repr(conn)
    with pytest.raises(d365.OperationalError) as e:
        conn.execute("SELECT name FROM account LIMIT 1")
    assert e.value.code is not None and e.value.code.startswith("AADSTS")
    assert e.value.status == 401
    for text_of_error in (str(e.value), repr(e.value), str(e.value.args)):
        assert wrong not in text_of_error


def test_duplicate_key_is_an_integrity_error(conn: d365.Connection) -> None:
    new_id = uuid.uuid4()
    conn.execute("INSERT INTO contact (contactid, lastname) VALUES (?, ?)", [new_id, "Dup"])
    with pytest.raises(d365.IntegrityError) as e:
        conn.execute("INSERT INTO contact (contactid, lastname) VALUES (?, ?)", [new_id, "Dup"])
    assert e.value.rowcount == 0
    assert len(e.value.failures) == 1 and e.value.failures[0]["row"] == 1
    conn.execute("DELETE FROM contact WHERE contactid = ?", [new_id])


def test_unconvertible_values_are_data_errors(conn: d365.Connection) -> None:
    with pytest.raises(d365.DataError) as e:
        conn.execute("INSERT INTO account (name, numberofemployees) VALUES (?, ?)", ["x", "many"])
    failure = e.value.failures[0]
    assert failure["column"] == "numberofemployees"
    assert e.value.rowcount == 0


def test_unsupported_sql_is_not_supported(conn: d365.Connection) -> None:
    with pytest.raises(d365.NotSupportedError):
        conn.execute("UPDATE account SET (name, telephone1) = ('a', 'b')")


def test_exec_procedure_and_callproc(emulator: d365.Emulator) -> None:
    desktop = emulator.app("desktop")["client_id"]
    text = (
        f"OrganizationUrl={emulator.org_url};AuthScheme=AzureAD;OAuthClientId={desktop};"
        f"AzureTenant={emulator.info['tenant_id']};AzureAuthorityHost={emulator.info['authority']};"
        f"SSLServerCert={emulator.info['ca_pem']};CallbackURL=http://localhost:33333"
    )
    with d365.connect(text, interactive=False) as conn:
        cur = conn.execute(
            "EXEC GetOAuthAuthorizationUrl @CallbackURL = 'http://localhost:33333', @State = 'q''1'"
        )
        assert [d[0] for d in cur.description] == ["URL"]
        (url,) = cur.fetchone()
        assert "/oauth2/v2.0/authorize" in url and "state=q%271" in url and desktop in url
        assert cur.callproc("GetOAuthAuthorizationUrl", {"State": "abc"}) == {"State": "abc"}
        assert "state=abc" in cur.fetchone()[0]
        with pytest.raises(d365.ProgrammingError, match="GetOAuthAuthorizationUrl"):
            cur.callproc("GetOAuthAuthorisationUrl")
        with pytest.raises(d365.ProgrammingError, match="EXEC syntax error"):
            cur.execute("EXEC GetOAuthAuthorizationUrl @State 'x'")
        # No stored sign-in and no browser allowed: a clear error, not a wait.
        with pytest.raises(d365.OperationalError, match="login"):
            conn.execute("SELECT name FROM account LIMIT 1")


def _user_connection(emu: d365.Emulator, settings: str) -> str:
    return (
        f"OrganizationUrl={emu.org_url};AuthScheme=AzureAD;OAuthClientId={emu.app('desktop')['client_id']};"
        f"AzureTenant={emu.info['tenant_id']};AzureAuthorityHost={emu.info['authority']};"
        f"SSLServerCert={emu.info['ca_pem']};InitiateOAuth=GETANDREFRESH;OAuthSettingsLocation={settings}"
    )


def test_device_code_sign_in_stores_tokens_for_later_connections(
    tmp_path: pathlib.Path, capfd: pytest.CaptureFixture[str]
) -> None:
    settings = tmp_path / "user.tokens"
    with d365.Emulator(rows=5, auto_approve="sales@contoso.onmicrosoft.com") as emu:
        text = _user_connection(emu, str(settings))
        with d365.connect(text, interactive="device_code") as conn:
            assert conn.execute("SELECT count(*) FROM account").fetchone()[0] >= 0
        assert "enter the code" in capfd.readouterr().err
        assert settings.exists()
        assert b"refresh_token" not in settings.read_bytes()  # encrypted at rest
        with d365.connect(text, interactive=False) as conn:  # the stored tokens: no prompt
            assert conn.execute("SELECT count(*) FROM account").fetchone()[0] >= 0
        assert capfd.readouterr().err == ""
    with pytest.raises(d365.InterfaceError, match="device_code"):
        d365.connect(text, interactive="telepathy")


def _cli() -> pathlib.Path | None:
    env = os.environ.get("D365_CLI")
    candidates = [pathlib.Path(env)] if env else []
    candidates.append(pathlib.Path(__file__).resolve().parents[3] / "target" / "debug" / "d365")
    return next((c for c in candidates if c.is_file()), None)


def test_d365_login_in_a_shell_then_python_just_works(tmp_path: pathlib.Path) -> None:
    cli = _cli()
    if cli is None:
        pytest.skip("the d365 binary is not built (scripts/test-all.sh builds it and sets D365_CLI)")
    settings = tmp_path / "shared.tokens"
    with d365.Emulator(rows=5, auto_approve="sales@contoso.onmicrosoft.com") as emu:
        text = _user_connection(emu, str(settings))
        env = {**os.environ, "D365_CONNECTION": text}
        run = subprocess.run(
            [str(cli), "login", "--device-code"], env=env, capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, run.stderr
        with d365.connect(text, interactive=False) as conn:
            assert conn.execute("SELECT count(*) FROM account").fetchone()[0] >= 0


def test_every_error_has_the_attributes_and_its_pep249_class(conn: d365.Connection) -> None:
    cur = conn.cursor()
    cur.close()
    with pytest.raises(d365.InterfaceError) as closed:
        cur.execute("SELECT 1")
    assert (closed.value.status, closed.value.code, closed.value.request_id) == (None, None, None)
    assert (closed.value.rowcount, closed.value.failures) == (None, None)
    assert d365.ProgrammingError("x").code is None
    # A value the engine cannot convert is the data's fault, not the service's.
    with pytest.raises(d365.DataError, match="'abc'"):
        conn.execute("SELECT count(*) FROM account WHERE revenue > ?", ["abc"]).fetchall()
    with pytest.raises(d365.NotSupportedError, match="escape_char"):
        conn.execute("SELECT count(*) FROM account WHERE name LIKE '%x!_%' ESCAPE '!'").fetchall()
    with pytest.raises(d365.ProgrammingError) as unknown:
        conn.row_counts(["nosuchtable"])
    assert unknown.value.code == "0x80041102" and unknown.value.status == 400
    # The service's validation refusing a value (out of range) is a DataError.
    with pytest.raises(d365.DataError) as big:
        conn.execute("INSERT INTO account (name, revenue) VALUES ('big', ?)", [decimal.Decimal("1e20")])
    assert big.value.code == "0x80044331" and big.value.rowcount == 0 and len(big.value.failures) == 1
    # A lookup to a record that does not exist is an IntegrityError.
    with pytest.raises(d365.IntegrityError) as missing:
        conn.execute(
            "INSERT INTO contact (lastname, parentcustomerid, parentcustomeridtype) "
            "VALUES ('orphan', ?, 'account')",
            [uuid.uuid4()],
        )
    assert missing.value.code == "0x80040217"
