"""The one personal-data policy: which fields identify a person, tagged once where declared.

A field is tagged where its model declares it: a pydantic field with :func:`personal`
(a ``Field`` whose JSON-schema extra says ``pii``), an ``Annotated[str, Personal(...)]``
hint, or a dataclass field whose metadata holds a :class:`Personal`. :func:`personal_fields`
reads the tags back, and :class:`PersonalDataPolicy` turns them into the rules the rest of
the SDK applies: which record fields are sealed in the audit trail, which are replaced by a
keyed pseudonym (``subject_ref``) in logs and spans, which are exported for a subject, and
which IP addresses are truncated before they are stored.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import inspect
import ipaddress
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from .._checks import Choice, flag, shown, text, texts
from ..errors import InvalidRequest

_Model = TypeVar("_Model", bound=type)

__all__ = [
    "Category",
    "Personal",
    "PersonalDataPolicy",
    "personal",
    "personal_fields",
    "pseudonym",
    "tagged",
    "truncate_ip",
]


class Category(str, Choice):
    """The kinds of personal data the SDK may hold; CREDENTIAL is CPRA "sensitive"."""

    ACCOUNT_ID = "account_id"
    FOLLOWER_ID = "follower_id"
    EMAIL = "email"
    NAME = "name"
    IP_ADDRESS = "ip_address"
    COMMENT = "comment"
    CREDENTIAL = "credential"


@dataclass(frozen=True, slots=True)
class Personal:
    """The tag: ``category`` of personal data; ``subject`` marks the field that names the
    person the record is about; ``aliases``, when given, are the names the value takes in
    records and events instead of its field name (``Follower.id`` is ``follower`` in the
    copy engine's audit events: a bare ``id`` names many things that are not people)."""

    category: Category
    subject: bool = False
    aliases: tuple[str, ...] = ()

    def json_extra(self) -> dict[str, Any]:
        """The tag as pydantic ``json_schema_extra``, so a model field carries it."""
        return {"pii": self.category.value, "subject": self.subject, "aliases": list(self.aliases)}


def personal(
    category: Category, *, subject: bool = False, aliases: Iterable[str] = (), **options: Any
) -> Any:
    """A pydantic ``Field`` tagged as personal data (other ``Field`` options pass through)."""
    from pydantic import Field

    unknown = sorted(set(options) - _field_options(Field))
    if unknown:
        raise InvalidRequest(
            f"personal() passes options on to pydantic's Field, which takes no {unknown}"
        )
    tag = Personal(Category(category), flag("subject", subject), tuple(texts("aliases", aliases)))
    return Field(json_schema_extra=tag.json_extra(), **options)


@functools.cache
def _field_options(field: Callable[..., Any]) -> frozenset[str]:
    """What ``personal(**options)`` passes on: the named parameters of pydantic's ``Field``
    (of the installed version), but the one it sets itself."""
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return frozenset(
        name
        for name, p in inspect.signature(field).parameters.items()
        if p.kind in named and name != "json_schema_extra"
    )


def _from_extra(extra: object) -> Personal | None:
    if not isinstance(extra, Mapping) or "pii" not in extra:
        return None
    return Personal(
        Category(extra["pii"]), bool(extra.get("subject")), tuple(extra.get("aliases") or ())
    )


def personal_fields(model: type) -> dict[str, Personal]:
    """The tagged fields of a pydantic model or a dataclass, by field name."""
    found: dict[str, Personal] = {}
    fields = getattr(model, "model_fields", None)
    if isinstance(fields, Mapping):  # pydantic v2
        for name, info in fields.items():
            tag = _from_extra(info.json_schema_extra) or next(
                (m for m in info.metadata if isinstance(m, Personal)), None
            )
            if tag is not None:
                found[name] = tag
        return found
    if dataclasses.is_dataclass(model):
        try:
            hints = typing.get_type_hints(model, include_extras=True)
        except (NameError, TypeError):  # a forward reference we cannot resolve: metadata only
            hints = {}
        for item in dataclasses.fields(model):
            tag = item.metadata.get("pii")
            if not isinstance(tag, Personal):
                tag = next(
                    (
                        m
                        for m in getattr(hints.get(item.name), "__metadata__", ())
                        if isinstance(m, Personal)
                    ),
                    None,
                )
            if tag is not None:
                found[item.name] = tag
        return found
    raise InvalidRequest(f"{shown(model)} is neither a pydantic model nor a dataclass")


def pseudonym(pepper: bytes, value: str) -> str:
    """A keyed pseudonym of ``value``: stable for one pepper, not guessable without it
    (a plain hash of an email or an account id is)."""
    if not isinstance(pepper, (bytes, bytearray)) or not pepper:
        raise InvalidRequest("pepper must be non-empty bytes (the privacy key's pepper)")
    return hmac.new(
        pepper, text("value", value, empty=True).encode("utf-8", "surrogatepass"), hashlib.sha256
    ).hexdigest()[:32]


def truncate_ip(value: str) -> str:
    """An IP address cut to its network (/24 for IPv4, /48 for IPv6): a text that is not
    an address comes back as ``"?"`` (never stored as it was)."""
    try:
        address = ipaddress.ip_address(value.strip())
    except (ValueError, AttributeError):  # not text: not an address either
        return "?"
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


# Models whose fields carry tags, registered by the layers above as they are imported
# (this layer imports none of them).
_TAGGED: list[type] = []


def tagged(model: _Model) -> _Model:
    """Class decorator: ``model``'s tagged fields join :meth:`PersonalDataPolicy.default`."""
    if model not in _TAGGED:
        _TAGGED.append(model)
    return model


class PersonalDataPolicy:
    """Field name -> :class:`Personal`, built from the tagged models.

    ``subject_fields`` name the person a record is about (the first one present wins).
    """

    def __init__(self, tags: Mapping[str, Personal]) -> None:
        if not isinstance(tags, Mapping) or not all(
            isinstance(name, str) and isinstance(tag, Personal) for name, tag in tags.items()
        ):
            raise InvalidRequest(
                "tags must map field names to Personal(...) tags; PersonalDataPolicy.default() "
                "builds the SDK's own"
            )
        self.tags = dict(tags)
        self.subject_fields = tuple(name for name, tag in self.tags.items() if tag.subject)

    @classmethod
    def from_models(
        cls, *models: type, extra: Mapping[str, Personal] | None = None
    ) -> PersonalDataPolicy:
        """A policy from the tags on ``models``' fields, plus ``extra`` field names."""
        if extra is not None and not isinstance(extra, Mapping):
            raise InvalidRequest("extra must map field names to Personal(...) tags")
        tags: dict[str, Personal] = {}
        for model in models:
            if not isinstance(model, type):
                raise InvalidRequest(f"models are classes (dataclasses), not {shown(model, 40)}")
            for name, tag in personal_fields(model).items():
                for alias in tag.aliases or (name,):
                    tags.setdefault(alias, tag)
        tags.update(extra or {})
        return cls(tags)

    @classmethod
    def default(cls) -> PersonalDataPolicy:
        """The models tagged so far (:func:`tagged`: the copy engine's, once imported), plus
        the field names the SDK's events use."""
        return cls.from_models(
            *_TAGGED,
            extra={
                "subject": Personal(Category.ACCOUNT_ID, subject=True),
                "email": Personal(Category.EMAIL),
                "person_name": Personal(Category.NAME),
                "display_name": Personal(Category.NAME),
                "comment": Personal(Category.COMMENT),
                "address": Personal(Category.IP_ADDRESS),
                "ip": Personal(Category.IP_ADDRESS),
            },
        )

    def subject_of(self, fields: Mapping[str, Any]) -> str | None:
        """The subject ``fields`` are about (the field tagged ``subject=True``), if any."""
        _fields(fields)
        for name in self.subject_fields:
            value = fields.get(name)
            if isinstance(value, str) and value:
                return value
        return None

    def split(self, fields: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(clear, personal): the trading facts, and the tagged fields (IPs truncated)."""
        clear: dict[str, Any] = {}
        private: dict[str, Any] = {}
        for name, value in _fields(fields).items():
            tag = self.tags.get(name)
            if tag is None or value is None:
                clear[name] = value
            elif tag.category is Category.IP_ADDRESS:
                private[name] = truncate_ip(str(value))
            else:
                private[name] = value
        return clear, private

    def minimise(self, fields: Mapping[str, Any], pepper: bytes) -> dict[str, Any]:
        """``fields`` for a log line or a span: each personal value replaced by its keyed
        pseudonym (IPs by their truncated network), the subject as ``subject_ref``."""
        if not isinstance(pepper, bytes) or not pepper:
            raise InvalidRequest("pepper must be the key's bytes (PrivacyKeys.pepper)")
        clear, private = self.split(fields)
        subject = self.subject_of(fields)
        if subject is not None:
            clear["subject_ref"] = pseudonym(pepper, subject)
        for name, value in private.items():
            tag = self.tags[name]
            if tag.subject:
                continue
            clear[name] = (
                value if tag.category is Category.IP_ADDRESS else pseudonym(pepper, str(value))
            )
        return clear

    @property
    def categories(self) -> list[str]:
        """The categories of personal data the tagged fields hold."""
        return sorted({tag.category.value for tag in self.tags.values()})


def _fields(fields: object) -> Mapping[str, Any]:
    """An event's fields: a mapping of names to values (as given to the audit trail)."""
    if not isinstance(fields, Mapping):
        raise InvalidRequest("fields must be a mapping of field names to values")
    return fields
