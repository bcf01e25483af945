"""Typed settings for every erpbridge process, read from the environment in one place."""

from __future__ import annotations

import json
import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    FilePath,
    NonNegativeInt,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]


class RateLimit(BaseModel):
    """A token bucket: `rate` commands per second on average, at most `burst` at once."""

    model_config = {"frozen": True}

    rate: float = Field(gt=0)
    burst: int = Field(ge=1)


WebhookProvider = Literal["shopify", "woocommerce", "stripe", "adyen", "medusa"]
"""A route's platform; Medusa's routes serve the storefront sink only (no webhooks in yet)."""


class WebhookRoute(BaseModel):
    """One shop or payment account whose webhooks arrive at /webhooks/<provider>/<name>.

    The lookups turn the provider's ids into erpbridge's; an id they lack is an error
    that names it, never a guess."""

    model_config = {"frozen": True, "extra": "forbid"}

    provider: WebhookProvider
    warehouses: dict[str, str] = Field(
        default_factory=dict,
        description="The storefront's location ids -> erpbridge warehouses "
        '({"905684977": "WH-EAST"}); WooCommerce, which has one stock location, uses "default".',
    )
    skus: dict[str, str] = Field(
        default_factory=dict,
        description="Shopify inventory item ids -> SKUs (its stock webhooks name no SKU).",
    )
    order_reference: str = Field(
        default="order_id",
        description="Stripe: the metadata key that holds erpbridge's order id.",
    )
    channel: str = Field(default="web", description="Sales channel of the shop's orders.")
    push_stock: bool = Field(
        default=False,
        description="`connector storefront` sets this storefront's stock levels from "
        "inventory.availability, for the warehouses of `warehouses` (needs admin_url and an "
        "admin token).",
    )
    push_tracking: bool = Field(
        default=False,
        description="The worker hands this storefront's orders' fulfilments (carrier, tracking "
        "number) to storefront.fulfilments; fulfilments the storefront reported itself are "
        "not handed back.",
    )
    push_catalog: bool = Field(
        default=False,
        description="`connector storefront` creates and updates this storefront's products "
        "from erp.catalog: name, description, list prices, archived when the ERP no longer "
        "sells them (needs admin_url and an admin token; Medusa, WooCommerce and Shopify).",
    )
    push_customers: bool = Field(
        default=False,
        description="`connector storefront` creates and updates this storefront's customer "
        "accounts from erp.customers: name, email, phone and first address, found again by "
        "the ERP's customer id kept on the account (needs admin_url and an admin token; "
        "Medusa, WooCommerce and Shopify).",
    )
    currency: str | None = Field(
        default=None,
        description="The storefront's one currency, where it prices in one (WooCommerce, "
        "Shopify): "
        "the ERP's list price in it is the product's price.",
    )
    stock_buffer: int = Field(
        default=0,
        ge=0,
        description="Units of each SKU held back from the level pushed (a safety buffer).",
    )
    stock_buffers: dict[str, NonNegativeInt] = Field(
        default_factory=dict,
        description='The buffer of particular SKUs, instead of stock_buffer ({"SKU-1": 5}).',
    )
    admin_url: str | None = Field(
        default=None,
        description="The provider's API for this route: the Shopify shop "
        "(https://<shop>.myshopify.com) or the WooCommerce site (`webhooks register`); "
        "Stripe's API, https://api.stripe.com unless set (a paid payout's transactions); "
        "Adyen's merchant account report folder "
        "(https://ca-live.adyen.com/reports/download/MerchantAccount/<account>).",
    )


class InvalidSettings(ValueError):
    """Settings that cannot start a process: one line per problem, naming the variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _SecretFiles(PydanticBaseSettingsSource):
    """`ERPBRIDGE_<SECRET>_FILE=/path`: the secret is the file's content without its trailing
    newline, as Kubernetes mounts secrets (the convention of the Postgres and MySQL images)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ reads every secret at once

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in secret_fields():
            variable = f"{env_variable(name)}_FILE"
            path = os.environ.get(variable)
            if path is None:
                continue
            if env_variable(name) in os.environ:
                raise InvalidSettings(
                    [f"{variable} and {env_variable(name)} are both set; set only one"]
                )
            try:
                text = Path(path).read_text()
            except (OSError, UnicodeDecodeError) as error:
                reason = error.strerror if isinstance(error, OSError) else str(error)
                raise InvalidSettings(
                    [f"{variable}={path!r}: cannot read the file: {reason}"]
                ) from None
            values[name] = text.removesuffix("\n").removesuffix("\r")
        return values


class Settings(BaseSettings):
    """Environment variables are `ERPBRIDGE_<FIELD>` unless an alias says otherwise.

    A secret (a SecretStr field: `erp_password`) can instead come from a file, as Kubernetes
    mounts secrets: `ERPBRIDGE_ERP_PASSWORD_FILE=/path` makes the file's content, without its
    trailing newline, the value. Setting both the variable and its `_FILE` is an error, and so
    is a missing or unreadable file. `load_settings` turns every problem into one line naming
    the variable.
    """

    model_config = SettingsConfigDict(env_prefix="ERPBRIDGE_", extra="ignore", frozen=True)

    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "KAFKA_BOOTSTRAP_SERVERS", "ERPBRIDGE_KAFKA_BOOTSTRAP_SERVERS"
        ),
        description="host:port list; when unset, local tools start a broker of their own.",
    )
    kafka_security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT",
        description="How every Kafka client connects: SASL_SSL (SCRAM over TLS) or SSL "
        "(TLS, a client certificate for mutual TLS) in production.",
    )
    kafka_sasl_mechanism: SaslMechanism = Field(default="SCRAM-SHA-512")
    kafka_sasl_username: str | None = Field(default=None)
    kafka_sasl_password: SecretStr | None = Field(default=None)
    kafka_ssl_ca_file: FilePath | None = Field(
        default=None,
        description="PEM CA certificates the brokers' certificates must chain to "
        "(default: the system's).",
    )
    kafka_ssl_cert_file: FilePath | None = Field(
        default=None, description="PEM client certificate (chain), for mutual TLS."
    )
    kafka_ssl_key_file: FilePath | None = Field(
        default=None, description="PEM private key of the client certificate, unencrypted."
    )
    app_id: str = Field(default="erpbridge", description="Faust app id and consumer group prefix.")
    topic_prefix: str = Field(
        default="", description="Prepended to every topic name, for several tenants on one cluster."
    )
    partitions: int = Field(
        default=6, ge=1, description="Partition count of every topic by default."
    )
    topic_partitions: dict[str, int] = Field(
        default_factory=dict,
        description='Per-topic partition counts by logical name, JSON: {"commerce.orders": 12}.',
    )
    replication_factor: int = Field(default=1, ge=1)
    schema_registry_url: str | None = Field(
        default=None,
        description="Confluent-compatible registry; when set, writers use the Confluent wire format.",
    )
    schemas_dir: Path = Field(default=REPO_ROOT / "schemas")
    data_dir: Path = Field(
        default=REPO_ROOT / "var" / "data", description="Worker state (RocksDB)."
    )
    web_host: str = Field(
        default="127.0.0.1", description="Bind address of the worker's web server."
    )
    web_port: int = Field(default=6066, ge=1, le=65535)
    create_topics: bool = Field(
        default=True,
        description="Whether the worker may create topics (Faust's changelogs); false where "
        "an operator (Strimzi KafkaTopic resources) owns every topic.",
    )
    group_instance_id: str | None = Field(
        default=None,
        description="Static group membership of the worker's consumers (Kubernetes: the pod "
        "name): a worker restarted within the session timeout keeps its partitions.",
    )
    connector_web_host: str = Field(
        default="127.0.0.1",
        description="Bind address of the ERP connector's health and metrics server.",
    )
    connector_web_port: int = Field(default=6067, ge=1, le=65535)
    health_stall_seconds: float = Field(
        default=300,
        gt=0,
        description="A consumer whose records wait on a partition it owns without progress "
        "for this long is not live.",
    )
    health_loop_blocked_seconds: float = Field(
        default=10,
        gt=0,
        description="An event loop blocked for longer than this is not live.",
    )
    session_timeout_seconds: float = Field(
        default=30,
        ge=6,
        description="How long the group waits for a silent worker before moving its partitions.",
    )
    routing_rules: Path = Field(
        default=REPO_ROOT / "config" / "routing.json",
        description="Warehouses and the routing rules that choose where order lines reserve.",
    )
    dedup_ttl_hours: float = Field(
        default=7 * 24, gt=0, description="How long event ids are remembered for de-duplication."
    )
    max_wait_minutes: float = Field(
        default=360,
        gt=0,
        description="How long an event that cannot apply yet (e.g. a shipment before its order) "
        "waits before it is dead-lettered.",
    )
    approval_thresholds: dict[str, dict[str, Decimal]] = Field(
        default_factory=dict,
        description="Per customer group (the order's customer.group, else its kind: CONSUMER "
        "or BUSINESS), per currency, the order total above which an order waits for "
        "OrderApproved or OrderRejected before it reserves or reaches the ERP, JSON: "
        '{"BUSINESS": {"USD": "10000", "EUR": "9000"}}. Storefront-flagged orders '
        "(requires_approval) always wait.",
    )
    po_number_required_groups: list[str] = Field(
        default_factory=list,
        description="Customer groups (customer.group, else the kind) whose orders must carry a "
        'purchase-order number, JSON: ["BUSINESS"]; an order without one is dead-lettered '
        "(po-number-required).",
    )
    snapshot_window_hours: float = Field(
        default=24,
        gt=0,
        description=(
            "How far an ERP stock snapshot's as_of may be behind the newest time its "
            "warehouse's stock feed told and still apply."
        ),
    )
    expiry_interval_seconds: float = Field(
        default=30,
        gt=0,
        description="How often the order timer checks waiting events for expiry and "
        "time-based alerts for being due.",
    )

    erp_target: str = Field(default="tryton", description="The ERP that commands are addressed to.")
    erp_sources: tuple[str, ...] = Field(
        default=("erp:",),
        description="`source` prefixes of events that come from the ERP itself; their stock "
        "changes are not sent back to it as AdjustInventory.",
    )
    confirm_on: Literal["captured", "authorized"] = Field(
        default="captured",
        description="Which payment makes a prepaid order confirmable as an ERP sales order.",
    )
    finance_mapping: Path = Field(
        default=REPO_ROOT / "config" / "finance.json",
        description="Journal templates per financial event, accounts, policy and exchange rates.",
    )
    erp_rate_limits: dict[str, RateLimit] = Field(
        default_factory=lambda: {"tryton": RateLimit(rate=20, burst=20)},
        description='Per ERP target, JSON: {"tryton": {"rate": 50, "burst": 10}}; shared by '
        "all workers in proportion to the partitions of the topics the dispatcher reads (the "
        "pending topic and the journal) each owns.",
    )
    dispatch_buffer: int = Field(
        default=5000,
        ge=1,
        description="Commands a worker holds while they wait for the rate limit; beyond this "
        "it stops reading the pending topic and the journal until some are sent.",
    )
    erp_url: str | None = Field(
        default=None,
        description="The ERP's API endpoint for the connector (Tryton: its JSON-RPC URL "
        "http://host:port/<database>/rpc/); the demo starts a local Tryton and sets it.",
    )
    erp_login: str = Field(default="admin", description="The ERP user the connector acts as.")
    erp_password: SecretStr | None = Field(
        default=None, description="That user's password (or API key)."
    )
    erp_max_in_flight: dict[str, int] = Field(
        default_factory=lambda: {"tryton": 2},
        description='Commands one connector runs at once per ERP, JSON: {"tryton": 2}. Match '
        "the ERP's own concurrency limit (NetSuite: 5 to 15 per account tier).",
    )
    erp_source_interval_seconds: float = Field(
        default=60,
        gt=0,
        description="How often `connector erp-source` asks the ERP for changed products and "
        "customers.",
    )
    erp_source_overlap_seconds: float = Field(
        default=300,
        ge=0,
        description="How far before the newest change it holds `connector erp-source` asks "
        "again: a change committed late with an earlier time is still seen (what is unchanged "
        "is not published again).",
    )
    medusa_poll_seconds: float = Field(
        default=5,
        gt=0,
        description="How often `connector medusa-source` asks each Medusa route for changed "
        "orders and payments.",
    )
    medusa_address_sweep_seconds: float = Field(
        default=300,
        gt=0,
        description="How often `connector medusa-source` reads every customer of each Medusa "
        "route with its addresses' times: Medusa moves no customer's `updated_at` when only "
        "an address is added or changed, and its customer list cannot filter on them.",
    )
    medusa_poll_overlap_seconds: float = Field(
        default=60,
        ge=0,
        description="How far before the newest change it read `connector medusa-source` asks "
        "again: a change committed late with an earlier time is still seen (what it read "
        "unchanged is skipped).",
    )
    erp_timeout_seconds: float = Field(
        default=30, gt=0, description="One ERP request's timeout; a timeout is retried."
    )
    erp_backoff_initial_seconds: float = Field(
        default=0.5, gt=0, description="First retry delay; it doubles per attempt, with jitter."
    )
    erp_backoff_max_seconds: float = Field(default=30, gt=0, description="Longest retry delay.")
    erp_give_up_seconds: float = Field(
        default=600,
        gt=0,
        description="How long a command may keep failing transiently (ERP down, throttled) "
        "before it goes to erp.commands.dlq.",
    )
    connector_buffer: int = Field(
        default=500,
        ge=1,
        description="Commands a connector holds (running or waiting to retry); beyond this it "
        "stops reading erp.commands.",
    )
    connector_commit_interval_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often the connector commits the offsets of commands the ERP confirmed "
        "or that were dead-lettered.",
    )
    journal_batch_size: int = Field(
        default=50, ge=1, description="Journal entries coalesced into one PostJournalEntry."
    )
    alert_sales_order_minutes: float = Field(
        default=15,
        gt=0,
        description="Captured payment with no confirmed ERP sales order after this long.",
    )
    alert_payment_minutes: float = Field(
        default=60, gt=0, description="Placed prepaid order with no payment after this long."
    )
    alert_unknown_order_minutes: float = Field(
        default=30, gt=0, description="Payment for an order never placed after this long."
    )
    alert_approval_minutes: float = Field(
        default=24 * 60,
        gt=0,
        description="An order waiting for approval with no decision after this long.",
    )
    alert_amount_tolerance: Decimal = Field(
        default=Decimal("0.01"),
        ge=0,
        description="How far the captured amount may differ from the order total.",
    )
    webhook_web_host: str = Field(
        default="127.0.0.1", description="Bind address of the webhooks connector."
    )
    webhook_web_port: int = Field(default=6068, ge=1, le=65535)
    webhook_routes: dict[str, WebhookRoute] = Field(
        default_factory=dict,
        description="The webhooks connector's shops and accounts by name, JSON: "
        '{"main": {"provider": "shopify", "warehouses": {"905684977": "WH-EAST"}}}.',
    )
    webhook_secrets: SecretStr | None = Field(
        default=None,
        description='Signing secrets per route name, JSON: {"main": ["new", "old"]}; '
        "several at once while a secret is rotated (Adyen: hex HMAC keys).",
    )
    webhook_admin_tokens: SecretStr | None = Field(
        default=None,
        description='Per route name, JSON: Shopify\'s Admin API access token ("shpat_...") '
        'and WooCommerce\'s "consumer_key:consumer_secret" for `webhooks register`; '
        "Stripe's API key, to read a paid payout's balance transactions; WooCommerce's also "
        "reads a refunded order's refunds; Adyen's report user "
        '("report@Company.<company>:<password>") downloads its settlement reports.',
    )
    webhook_public_url: str | None = Field(
        default=None,
        description="The connector's URL as the providers reach it "
        "(https://hooks.example.com); `erpbridge webhooks register` subscribes routes under it.",
    )
    webhook_ack_timeout_seconds: float = Field(
        default=4.0,
        gt=0,
        description="How long a webhook waits for the broker's confirmation before a 503 "
        "(Shopify gives up after 5 s).",
    )
    webhook_max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Larger webhook bodies are answered 413."
    )
    webhook_timestamp_tolerance_seconds: float = Field(
        default=300,
        gt=0,
        description="How far a signed timestamp (Stripe's t=) may be from now.",
    )
    webhook_echo_seconds: float = Field(
        default=600,
        gt=0,
        description="How long a stock level erpbridge pushed to a storefront is recognised "
        "when the storefront's webhook echoes it back.",
    )
    alert_drift_tolerance: int = Field(
        default=0,
        ge=0,
        description="Units an ERP snapshot's on hand may differ from erpbridge's before an alert.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _SecretFiles(settings_cls), dotenv_settings)

    @field_validator("topic_partitions")
    @classmethod
    def _positive_counts(cls, value: dict[str, int]) -> dict[str, int]:
        bad = {name: count for name, count in value.items() if count < 1}
        if bad:
            raise ValueError(f"partition counts must be >= 1, got {bad}")
        return value

    @field_validator("approval_thresholds")
    @classmethod
    def _thresholds(cls, value: dict[str, dict[str, Decimal]]) -> dict[str, dict[str, Decimal]]:
        for group, limits in value.items():
            for currency, amount in limits.items():
                if not re.fullmatch(r"[A-Z]{3}", currency):
                    raise ValueError(f"{group}.{currency}: not an ISO 4217 currency code")
                if amount < 0:
                    raise ValueError(f"{group}.{currency}: {amount} is negative")
        return value

    @field_validator("webhook_secrets", "webhook_admin_tokens")
    @classmethod
    def _json_by_route(cls, value: SecretStr | None) -> SecretStr | None:
        # Checked here so a typo stops the process at start; the message never shows the value.
        if value is not None:
            _parse_by_route(value)
        return value

    @model_validator(mode="after")
    def _kafka_security_consistent(self) -> Settings:
        """Settings the chosen protocol would ignore are refused too: a CA file with
        PLAINTEXT means someone believes the connection is encrypted when it is not."""
        protocol = self.kafka_security_protocol
        problems = []
        sasl = protocol.startswith("SASL_")
        for name in ("kafka_sasl_username", "kafka_sasl_password"):
            if sasl and getattr(self, name) is None:
                problems.append(f"{env_variable(name)} must be set with {protocol}")
            if not sasl and getattr(self, name) is not None:
                problems.append(f"{env_variable(name)} is set but {protocol} does not use SASL")
        if not protocol.endswith("SSL"):
            problems += [
                f"{env_variable(name)} is set but {protocol} does not use TLS"
                for name in ("kafka_ssl_ca_file", "kafka_ssl_cert_file", "kafka_ssl_key_file")
                if getattr(self, name) is not None
            ]
        elif (self.kafka_ssl_cert_file is None) != (self.kafka_ssl_key_file is None):
            problems.append(
                f"{env_variable('kafka_ssl_cert_file')} and {env_variable('kafka_ssl_key_file')} "
                "go together (a client certificate and its key); only one is set"
            )
        if problems:
            # One error without a field: load_settings prints each of its lines as is.
            raise PydanticCustomError("kafka_security", "\n".join(problems))
        return self

    def require_bootstrap(self) -> str:
        if not self.kafka_bootstrap_servers:
            raise ValueError("KAFKA_BOOTSTRAP_SERVERS is not set")
        return self.kafka_bootstrap_servers

    def confluent_config(self) -> dict[str, str]:
        """Connection settings for confluent-kafka clients (librdkafka names), security included."""
        from streams.ops.kafka_security import confluent_security

        return {"bootstrap.servers": self.require_bootstrap(), **confluent_security(self)}

    def producer_config(self) -> dict[str, str | bool]:
        """confluent-kafka producer settings that partition like Java clients and Faust do.

        librdkafka's default partitioner is CRC32; murmur2 puts a key on the same partition
        as every other producer, which keeps orders and payments of one order together.
        """
        return {
            **self.confluent_config(),
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "acks": "all",
        }

    def webhook_secrets_of(self, route: str) -> tuple[bytes, ...]:
        """The signing secrets of one webhook route, newest first; none if it has none."""
        secrets = _parse_by_route(self.webhook_secrets) if self.webhook_secrets else {}
        found = secrets.get(route, ())
        return tuple(s.encode() for s in ([found] if isinstance(found, str) else found))

    def webhook_admin_token(self, route: str) -> str | None:
        tokens = _parse_by_route(self.webhook_admin_tokens) if self.webhook_admin_tokens else {}
        token = tokens.get(route)
        return token if isinstance(token, str) else None


def _parse_by_route(value: SecretStr) -> dict[str, str | list[str]]:
    try:
        parsed = json.loads(value.get_secret_value())
    except ValueError:
        raise ValueError("not valid JSON") from None
    if not isinstance(parsed, dict) or not all(
        isinstance(v, str) or (isinstance(v, list) and all(isinstance(i, str) for i in v))
        for v in parsed.values()
    ):
        raise ValueError("must be a JSON object of route name -> string or list of strings")
    return parsed


def env_variable(field_name: str) -> str:
    """The environment variable a setting is read from (its first alias, if it has any)."""
    alias = Settings.model_fields[field_name].validation_alias
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return f"ERPBRIDGE_{field_name.upper()}"


def secret_fields() -> list[str]:
    return [
        name
        for name, field in Settings.model_fields.items()
        if SecretStr in (field.annotation, *getattr(field.annotation, "__args__", ()))
    ]


def _variable_of(key: str) -> str:
    """`key` is a field name or one of its aliases, as pydantic reports them."""
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else []
        if key.lower() in (name, *(str(choice).lower() for choice in choices)):
            return env_variable(name)
    return key


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment (and `overrides`), or InvalidSettings naming each bad
    variable, its value and why."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            if not error["loc"]:
                # A check across settings (Kafka security): its lines name the variables.
                problems += error["msg"].splitlines()
                continue
            key, *path = (str(part) for part in error["loc"])
            variable = _variable_of(key)
            where = f" at {'.'.join(path)}" if path else ""
            # A secret's value never goes into a message, which may end up in a log.
            value = "" if key in secret_fields() else f"={error['input']!r}"
            problems.append(f"{variable}{where}{value}: {error['msg']}")
        raise InvalidSettings(problems) from None
    except SettingsError as exc:
        # pydantic-settings names the field only in its message: a JSON value that is not JSON.
        match = re.search(r'field "(\w+)"', str(exc))
        variable = _variable_of(match.group(1)) if match else "a setting"
        raw = os.environ.get(variable)
        raise InvalidSettings([f"{variable}={raw!r}: not valid JSON ({exc.__cause__})"]) from None
