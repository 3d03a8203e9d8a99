"""Tables of the lab: the event store (write side), snapshots, and the projector's read side.

The event table is append-only (database triggers refuse UPDATE and DELETE, created by
concepts/migrations/0002_event_store_append_only.py); the only removal is purging a whole idle sandbox, which
first records a PurgePermit the triggers check.

These models began in the `concepts` app and moved here without touching the database: every table keeps its
`concepts_` name (Meta.db_table), because the triggers and the store's raw SQL name them.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

# The read models, by the name their Checkpoint rows carry. The retroactive model always builds into one
# generation; the balance model is rebuilt blue/green into live_generation + 1.
BALANCE = "balance"
LARGEST_DEPOSIT = "largest_deposit"
RETRO_GENERATION = 1

# Sandbox.mode: which write model a sandbox runs (lab.modes). State-only is CQRS without event sourcing.
EVENT_SOURCED = "event-sourced"
STATE_ONLY = "state-only"
MODES = (EVENT_SOURCED, STATE_ONLY)

# Sandbox.domain: which lab a sandbox runs. The account lab is "account"; the domains of "Where it shows up" are
# lab.engine.domains.DOMAINS' names ("ledger", "orderbook", "document"), each in a sandbox of its own
# (lab.domain_labs). Their read models are DomainReadModel rows, kept by two checkpoints: DOMAIN_LIVE for the
# read models every domain lab starts with, DOMAIN_LATE for those a learner adds after the fact (the auditor).
ACCOUNT = "account"
DOMAIN_LIVE = "domain-live"
DOMAIN_LATE = "domain-late"


class Sandbox(models.Model):
    """One visitor's private lab: its account stream, its read models and its settings."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session_key = models.CharField(max_length=64, blank=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="sandboxes"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_active_at = models.DateTimeField(auto_now_add=True, db_index=True)
    retired_at = models.DateTimeField(null=True, blank=True, help_text="Set when a reset replaced it.")
    # Who started it, for LAB_MAX_SANDBOXES_PER_ADDRESS: a keyed hash of the client's address (an IPv6 /64), never
    # the address itself. Empty for sandboxes made before it was recorded, and for those a test creates directly.
    client = models.CharField(max_length=32, blank=True, default="")

    lag_ms = models.PositiveIntegerField(default=2000)
    snapshot_interval = models.PositiveIntegerField(default=10)
    deposit_schema_version = models.PositiveSmallIntegerField(default=1)
    projector_paused = models.BooleanField(default=False)
    projector_crashed_until = models.DateTimeField(null=True, blank=True)
    retro_model_enabled = models.BooleanField(default=False)
    # How fast a rebuild and the retroactive model's catch-up replay the log, in events a second (0: as fast as
    # the projector can). Slow by default so a learner can watch the fold; live projection ignores it.
    replay_rate = models.PositiveIntegerField(default=10)
    # Which write model this sandbox runs: "event-sourced" (an append-only log, the default) or "state-only"
    # (CQRS without event sourcing: the write model is this row's state_* columns, updated in place).
    mode = models.CharField(max_length=16, default=EVENT_SOURCED)
    # The state-only write model: the current balance and its version (+1 per accepted command). Unused in
    # event-sourced mode.
    state_balance = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    state_version = models.PositiveIntegerField(default=0)
    # When the oldest change not yet copied to the read side was made (None: the read side has it). The copy
    # projection runs once this is lag_ms old, and carries the state as it is then.
    state_pending_since = models.DateTimeField(null=True, blank=True)
    # Which generation of the read models answers queries; a rebuild fills generation + 1, then swaps.
    live_generation = models.PositiveIntegerField(default=1)
    rebuilding_generation = models.PositiveIntegerField(null=True, blank=True)
    # Which lab this sandbox runs (ACCOUNT, or a domain of lab.engine.domains): it names the stream too.
    domain = models.CharField(max_length=16, default=ACCOUNT)

    class Meta:
        db_table = "concepts_sandbox"
        indexes = [
            models.Index(fields=["user", "retired_at"]),
            models.Index(fields=["session_key", "retired_at"]),
            models.Index(fields=["client", "retired_at"]),
        ]

    def __str__(self) -> str:
        return f"sandbox {self.id}"

    @property
    def stream_id(self) -> str:
        return f"{self.domain or ACCOUNT}-{self.id}"


class StoredEvent(models.Model):
    """One event, forever. `position` is the global order; (stream_id, version) the per-stream slot."""

    position = models.BigAutoField(primary_key=True)
    # No index of its own: the (sandbox, position) index below serves every lookup by sandbox, and each extra
    # index is one more page written and fsynced per append.
    sandbox = models.ForeignKey(
        Sandbox, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    stream_id = models.CharField(max_length=80)
    version = models.PositiveIntegerField()
    event_type = models.CharField(max_length=64)
    schema_version = models.PositiveSmallIntegerField(default=1)
    payload = models.JSONField()
    event_id = models.UUIDField(unique=True, default=uuid.uuid4)
    command_id = models.CharField(max_length=64)
    correlation_id = models.UUIDField()
    causation_id = models.UUIDField()
    recorded_at = models.DateTimeField()

    class Meta:
        db_table = "concepts_storedevent"
        constraints = [models.UniqueConstraint(fields=["stream_id", "version"], name="event_stream_version_unique")]
        indexes = [models.Index(fields=["sandbox", "position"])]

    def __str__(self) -> str:
        return f"#{self.position} {self.stream_id}@{self.version} {self.event_type}"


class CommandRecord(models.Model):
    """The first outcome of each command id, so a re-sent command returns it and appends nothing."""

    sandbox = models.ForeignKey(Sandbox, on_delete=models.CASCADE, related_name="+")
    command_id = models.CharField(max_length=64)
    command_type = models.CharField(max_length=32)
    accepted = models.BooleanField()
    outcome = models.JSONField()
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "concepts_commandrecord"
        constraints = [models.UniqueConstraint(fields=["sandbox", "command_id"], name="command_once_per_sandbox")]

    def __str__(self) -> str:
        return f"command {self.command_id} ({'accepted' if self.accepted else 'rejected'})"


class PurgePermit(models.Model):
    """Present only inside the transaction that purges a whole sandbox; the delete trigger checks it."""

    sandbox_id = models.UUIDField(primary_key=True)

    class Meta:
        db_table = "concepts_purgepermit"

    def __str__(self) -> str:
        return f"purge permit for sandbox {self.sandbox_id}"


class Snapshot(models.Model):
    """A cache of the write model's state at a version. Never a source of truth; ignored if stale."""

    sandbox = models.ForeignKey(Sandbox, on_delete=models.CASCADE, related_name="snapshots")
    stream_id = models.CharField(max_length=80)
    version = models.PositiveIntegerField()
    state = models.JSONField()
    fingerprint = models.CharField(max_length=64)
    taken_at = models.DateTimeField(auto_now_add=True)
    reason = models.CharField(max_length=16, default="auto")  # "auto" | "manual" | "replaced"

    class Meta:
        db_table = "concepts_snapshot"
        constraints = [models.UniqueConstraint(fields=["stream_id", "version"], name="snapshot_stream_version_unique")]

    def __str__(self) -> str:
        return f"snapshot {self.stream_id}@{self.version}"


class LoadReport(models.Model):
    """What the last write-model load of a sandbox did (snapshot used, events replayed)."""

    sandbox = models.OneToOneField(Sandbox, on_delete=models.CASCADE, primary_key=True, related_name="load_report")
    snapshot_version = models.PositiveIntegerField(null=True, blank=True)
    events_replayed = models.PositiveIntegerField(default=0)
    events_without_snapshot = models.PositiveIntegerField(default=0)
    loaded_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "concepts_loadreport"

    def __str__(self) -> str:
        return f"load of sandbox {self.sandbox_id}: snapshot v{self.snapshot_version} + {self.events_replayed} events"


# --- Read side ------------------------------------------------------------------------------------


class Checkpoint(models.Model):
    """How far one projection (one generation of it) has read a sandbox's events. Committed with its writes."""

    sandbox = models.ForeignKey(Sandbox, on_delete=models.CASCADE, related_name="checkpoints")
    projection = models.CharField(max_length=32)  # "balance" | "largest_deposit"
    generation = models.PositiveIntegerField(default=1)
    position = models.BigIntegerField(default=0)
    version = models.PositiveIntegerField(default=0, help_text="Stream version of the last applied event.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "concepts_checkpoint"
        constraints = [
            models.UniqueConstraint(fields=["sandbox", "projection", "generation"], name="checkpoint_unique")
        ]

    def __str__(self) -> str:
        return f"{self.projection} g{self.generation} at #{self.position} (v{self.version})"


class BalanceView(models.Model):
    sandbox = models.ForeignKey(Sandbox, on_delete=models.CASCADE, related_name="+")
    generation = models.PositiveIntegerField(default=1)
    amount = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    version = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "concepts_balanceview"
        constraints = [models.UniqueConstraint(fields=["sandbox", "generation"], name="balance_view_unique")]

    def __str__(self) -> str:
        return f"balance g{self.generation} {self.amount} at v{self.version}"


class HistoryLine(models.Model):
    """One transaction as the read side lists it, with the event position it came from."""

    sandbox = models.ForeignKey(Sandbox, on_delete=models.CASCADE, related_name="+")
    generation = models.PositiveIntegerField(default=1)
    position = models.BigIntegerField()
    version = models.PositiveIntegerField()
    kind = models.CharField(max_length=16)  # "deposit" | "withdrawal"
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    balance_after = models.DecimalField(max_digits=14, decimal_places=2)
    recorded_at = models.DateTimeField()
    applied_count = models.PositiveSmallIntegerField(default=1, help_text="Proof of exactly-once in crash tests.")
    # When the projector applied it (recorded_at is when it was appended): the chart's read line after a reload.
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "concepts_historyline"
        constraints = [
            models.UniqueConstraint(fields=["sandbox", "generation", "position"], name="history_line_unique")
        ]
        ordering = ["position"]

    def __str__(self) -> str:
        return f"#{self.position} {self.kind} {self.amount}"


class LargestDepositView(models.Model):
    """The retroactive read model: built from position 0 whenever a learner enables it."""

    sandbox = models.ForeignKey(Sandbox, on_delete=models.CASCADE, related_name="+")
    generation = models.PositiveIntegerField(default=1)
    amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    position = models.BigIntegerField(null=True, blank=True)
    deposits_seen = models.PositiveIntegerField(default=0)
    version = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "concepts_largestdepositview"
        constraints = [models.UniqueConstraint(fields=["sandbox", "generation"], name="largest_deposit_unique")]

    def __str__(self) -> str:
        return f"largest deposit g{self.generation} {self.amount} at v{self.version}"


class DeadLetter(models.Model):
    """An event a projection could not apply; it stalls that sandbox's projection until dealt with."""

    sandbox = models.ForeignKey(Sandbox, on_delete=models.CASCADE, related_name="dead_letters")
    projection = models.CharField(max_length=32)
    position = models.BigIntegerField()
    error = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # Set when a learner skipped the event: the projection passes over this position for good (rebuilds too).
    skipped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "concepts_deadletter"
        constraints = [models.UniqueConstraint(fields=["sandbox", "projection", "position"], name="dead_letter_unique")]

    def __str__(self) -> str:
        return f"dead letter {self.projection} #{self.position}"


class DomainReadModel(models.Model):
    """One read model of a domain lab (lab.domain_projections): the engine's read-model state as JSON, written in
    the same transaction as its checkpoint. One row per sandbox and read-model name."""

    sandbox = models.ForeignKey(Sandbox, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=32)
    version = models.PositiveIntegerField(default=0)
    state = models.JSONField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "lab_domainreadmodel"
        constraints = [models.UniqueConstraint(fields=["sandbox", "name"], name="domain_read_model_unique")]

    def __str__(self) -> str:
        return f"{self.name} at v{self.version}"


# --- Teaching: what the learner did that the store does not keep, and missions met ---------------------------


class SandboxFact(models.Model):
    """Something a learner saw or did in a sandbox that no table records (a stale answer, a time travel to v=3, a
    crash, the scenario loaded), kept once per name: the missions read these beside the store's own state."""

    sandbox = models.ForeignKey(Sandbox, on_delete=models.CASCADE, related_name="facts")
    name = models.CharField(max_length=40)
    value = models.IntegerField(default=0)  # a number the fact carries (the lag of a stale read, a version)
    detail = models.CharField(max_length=80, blank=True)  # a word it carries (the scenario's id)
    at = models.DateTimeField()

    class Meta:
        db_table = "lab_sandboxfact"
        constraints = [models.UniqueConstraint(fields=["sandbox", "name"], name="sandbox_fact_once")]

    def __str__(self) -> str:
        return f"{self.name}={self.value} {self.detail}".strip()


class MissionDone(models.Model):
    """A mission a learner met, kept beyond the sandbox (a reset or a scenario starts a new one): per account, or
    for a visitor per browser session (the session key the visitor's sandboxes carry)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    session_key = models.CharField(max_length=64, blank=True, db_index=True)
    mission = models.CharField(max_length=40)
    done_at = models.DateTimeField()

    class Meta:
        db_table = "lab_missiondone"
        constraints = [
            models.UniqueConstraint(fields=["user", "mission"], name="mission_done_once_per_user"),
            models.UniqueConstraint(
                fields=["session_key", "mission"],
                condition=models.Q(user__isnull=True),
                name="mission_done_once_per_visitor",
            ),
        ]

    def __str__(self) -> str:
        return f"mission {self.mission} done"
