"""`manage.py grant_app_role`: the PostgreSQL role the site runs as, with the least it needs (docs/deploy.md).

Run it as the tables' owner (the role migrations run as), after every `migrate`: it creates the role when missing
and grants it, on every table of the schema, reading and writing rows and nothing more. Owning no table, the
role cannot ALTER or DROP a table, DROP the append-only triggers, or TRUNCATE; on the events table it may SELECT,
INSERT and DELETE only (a DELETE still meets the trigger, which allows a sandbox's purge alone), never UPDATE.
Idempotent: running it again grants the tables a later migration added.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

EVENTS = "concepts_storedevent"
ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def grant_statements(role: str, schema: str, database: str) -> list[str]:
    """The SQL, in order. Names are checked (role) or come from the database itself, and are quoted."""
    r, s, d = (connection.ops.quote_name(x) for x in (role, schema, database))
    return [
        f"REVOKE ALL ON DATABASE {d} FROM {r}",
        f"GRANT CONNECT, TEMPORARY ON DATABASE {d} TO {r}",
        f"REVOKE CREATE ON SCHEMA {s} FROM {r}",
        f"GRANT USAGE ON SCHEMA {s} TO {r}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {r}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {r}",
        f"REVOKE UPDATE ON {s}.{connection.ops.quote_name(EVENTS)} FROM {r}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {r}",
    ]


class Command(BaseCommand):
    help = "Create (if missing) and grant the PostgreSQL role the site runs as: rows only, no DDL. Run as the owner."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--role", default="reqflow_app", help="the role's name (default reqflow_app)")
        parser.add_argument("--password", default=None, help="set this password (else an existing role keeps its)")

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("grant_app_role is for PostgreSQL (set DATABASE_URL to the owner's connection)")
        role = options["role"]
        if not ROLE_NAME.fullmatch(role):
            raise CommandError(f"--role must be a lower-case SQL name (letters, digits, _), not {role!r}")
        with connection.cursor() as cur:
            cur.execute("SELECT current_schema(), current_database(), current_user")
            schema, database, owner = cur.fetchone()
            if role == owner:
                raise CommandError(f"{role} is the role running this command (the owner): choose another name")
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
            quoted = connection.ops.quote_name(role)
            if cur.fetchone() is None:
                cur.execute(f"CREATE ROLE {quoted} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT")
            if options["password"] is not None:
                # A parameter cannot stand in a utility statement: quote it as a literal on the server side.
                cur.execute("SELECT quote_literal(%s)", [options["password"]])
                cur.execute(f"ALTER ROLE {quoted} PASSWORD {cur.fetchone()[0]}")
            for statement in grant_statements(role, schema, database):
                cur.execute(statement)
        self.stdout.write(f"{role}: rows of every table in {database}.{schema}; no UPDATE of {EVENTS}; no DDL")
