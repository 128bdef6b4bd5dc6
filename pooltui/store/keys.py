"""Adding a key to a provider's pool: one step for the CLI, the importer and the monitor.

Run it inside ``ConfigEditor`` (the config lock is held): it checks the label and the secret against what
is on disk, stores the secret, and adds the entry; the caller's transaction saves or rolls back. What it
stored is recorded in ``stored`` so a failed transaction deletes exactly that and nothing of another
process.
"""

from __future__ import annotations

from pooltui.core.masking import fingerprint
from pooltui.store.config import KeyEntry, ProviderConfig
from pooltui.store.secrets import SecretStore


class DuplicateKeyError(ValueError):
    """The label, or the secret itself, is already in the pool."""


def add_key(p: ProviderConfig, store: SecretStore, label: str, *, secret: str = "", env_var: str | None = None,
            note: str = "", quota_group: str | None = None, link: bool = False,
            stored: list[str] | None = None) -> KeyEntry:
    """Add ``label`` to ``p``'s pool with its secret (or an ``env:`` reference); returns the new entry.

    The same secret under another label is refused (``DuplicateKeyError`` names the label that holds it)
    unless ``link``: then both labels share one quota group.
    """
    if p.key(label) is not None:
        raise DuplicateKeyError(f"{p.name} already has a key labelled {label!r}")
    holder = p.holder_of(secret, store.get) if secret else None
    if holder is not None and not link:
        raise DuplicateKeyError(
            f"that key is already in the pool as {p.name}/{holder.label} (fp {fingerprint(secret)}): one account "
            "counted twice would double its limits; use --link to add it under both labels in one quota group")
    if holder is not None:
        quota_group = quota_group or holder.quota_group or f"same-{holder.label}"
        holder.quota_group = quota_group
    if env_var is not None:
        ref = f"env:{env_var}"
    else:
        ref = store.put(p.name, label, secret)
        if stored is not None:
            stored.append(ref)
    entry = KeyEntry(label, ref, note, quota_group)
    p.keys.append(entry)
    if p.credential_pool is not None:
        p.credential_pool.append(label)
    return entry


def forget(store: SecretStore, stored: list[str]) -> None:
    """Roll back: delete the secrets this transaction stored (never another process's)."""
    from pooltui.store.secrets import SecretStoreError

    for ref in stored:
        try:
            store.delete(ref)
        except SecretStoreError:
            pass
