"""The built-in emulator of Entra ID, the Dataverse Web API and Finance & Operations (with AD FS),
from Python: no account needed."""

from __future__ import annotations

import json
from typing import Any

from d365 import _internal


class Emulator:
    """A local Dataverse organisation with its own Entra ID, over HTTPS, in this process.

    ::

        with d365.Emulator(rows=10_000) as emu:
            conn = d365.connect(emu.connection_string)
            print(conn.execute("SELECT count(*) FROM account").fetchone())

    Args:
        rows: accounts to seed (contacts, leads and opportunities in proportion).
        port: HTTPS port on 127.0.0.1 (0 picks a free one).
        data: a SQLite file that keeps the data across runs (default: in memory).
        config: a TOML seed configuration (apps, users, roles), as ``d365 emulator --config``.
        latency_ms: delay added to every Web API request.
        latency_per_row_us: extra delay per row returned or written.
        dop_hint: the ``x-ms-dop-hint`` it announces.
        verbose: log every request to standard error.
        auto_approve: sign this user (``sales@contoso.onmicrosoft.com``...) in on the sign-in
            and device-code pages by itself, for tests of user sign-ins.
        state_dir: where the CA, keys and app certificates go (default: beside ``data``, or a
            temporary directory removed by :meth:`stop`).
        token_lifetime_s: lifetime of the access tokens it issues.
        limits: service-protection limits per user, as ``d365 emulator --limits``:
            ``"requests=6000,window=300,exec-seconds=1200,concurrent=52"``.
        faults: injected faults, as ``d365 emulator --faults``: ``"429=0.02,503=0.01,reset=0.01"``.
        fault_seed: seed of the fault generator (same seed, same faults).
        app_users: more application users, apps ``worker-1`` ... ``worker-N`` with a client
            secret (:meth:`secret_connection_string`), each with its own service-protection
            budget, as on Dataverse: for scaled-out exports (:mod:`d365.scaleout`).
    """

    def __init__(
        self,
        rows: int = 1000,
        *,
        port: int = 0,
        data: str | None = None,
        config: str | None = None,
        latency_ms: int = 0,
        latency_per_row_us: int = 0,
        dop_hint: int | None = None,
        verbose: bool = False,
        auto_approve: str | None = None,
        state_dir: str | None = None,
        token_lifetime_s: int = 3600,
        limits: str | None = None,
        faults: str | None = None,
        fault_seed: int = 1,
        app_users: int = 0,
    ) -> None:
        self._inner = _internal.Emulator(
            rows,
            port,
            data,
            config,
            latency_ms,
            latency_per_row_us,
            dop_hint,
            verbose,
            auto_approve,
            state_dir,
            token_lifetime_s,
            limits,
            faults,
            fault_seed,
            app_users,
        )
        self.info: dict[str, Any] = json.loads(self._inner.ready_json)
        """The ready information: ``authority``, ``tenant_id``, ``org_url``, ``ca_pem``,
        ``apps`` (with their test secrets and certificate files), ``users``, and ``fno`` (the
        Finance & Operations environments: ``org_url``, ``onprem_url``, ``adfs_authority``,
        ``hr_legacy_url``, ``companies``, ...)."""

    @property
    def connection_string(self) -> str:
        """Connects as the emulator's certificate app (System Administrator)."""
        return self._inner.connection_string

    @property
    def org_url(self) -> str:
        """The organisation URL (``https://localhost:PORT``)."""
        return str(self.info["org_url"])

    @property
    def running(self) -> bool:
        return self._inner.running

    def app(self, name: str) -> dict[str, Any]:
        """The seeded app called ``name`` (``integration``, ``desktop``, ...)."""
        for app in self.info["apps"]:
            if app["name"] == name:
                return dict(app)
        names = ", ".join(a["name"] for a in self.info["apps"])
        raise KeyError(f"the emulator has no app '{name}' (it has {names})")

    def secret_connection_string(self, app: str = "integration") -> str:
        """A connection string signing in as ``app`` with its client secret (``integration``,
        or ``worker-1`` ... of ``app_users``)."""
        a = self.app(app)
        if "client_secret" not in a:
            raise KeyError(f"app '{app}' has no client secret")
        return (
            f"OrganizationUrl={self.info['org_url']};AuthScheme=AzureServicePrincipal;"
            f"AzureTenant={self.info['tenant_id']};OAuthClientId={a['client_id']};"
            f"OAuthClientSecret={a['client_secret']};AzureAuthorityHost={self.info['authority']};"
            f"SSLServerCert={self.info['ca_pem']}"
        )

    def finops_connection_string(self, edition: str = "finops", *, cross_company: bool = True) -> str:
        """A connection string of one of the emulator's Finance & Operations environments.

        Args:
            edition: ``"finops"`` (``Edition=FinOpsOnline``, the certificate app through Entra
                ID), ``"finops-onprem"`` (``Edition=FinOpsOnPremise``, the integration app's
                secret through the emulator's AD FS) or ``"hr"`` (``Edition=HumanResources`` at
                the legacy ``/namespaces/{guid}`` URL).
            cross_company: read every company (``CrossCompany=true``), not only the app's
                default company (``usmf``).
        """
        fno = self.info["fno"]
        cc = f"CrossCompany={'true' if cross_company else 'false'}"
        if edition == "finops-onprem":
            a = self.app("integration")
            return (
                f"OrganizationUrl={fno['onprem_url']};Edition=FinOpsOnPremise;AuthScheme=ADFS;"
                f"ADFSServer={fno['adfs_authority']};OAuthClientId={a['client_id']};"
                f"OAuthClientSecret={a['client_secret']};{cc};SSLServerCert={self.info['ca_pem']}"
            )
        urls = {"finops": (fno["org_url"], "FinOpsOnline"), "hr": (fno["hr_legacy_url"], "HumanResources")}
        if edition not in urls:
            raise ValueError(f"edition must be 'finops', 'finops-onprem' or 'hr', not {edition!r}")
        url, name = urls[edition]
        rest = self.connection_string.split(";", 1)[1]
        return f"OrganizationUrl={url};Edition={name};{cc};{rest}"

    def stop(self) -> None:
        """Stop it and remove its temporary files; stopping twice is harmless."""
        self._inner.stop()

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return repr(self._inner)
