"""The UserService domain: validate, write PostgreSQL in one transaction, then the cache.

Validation comes first and every write is one transaction, so a refused request changes
nothing. Partial updates set only the masked columns, in one statement that also bumps the
row's version, so concurrent updates of one user never lose each other's fields.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from uuid import UUID, uuid4

import structlog
from psycopg.errors import UniqueViolation
from psycopg_pool import AsyncConnectionPool

from mesh.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from mesh.outbound import OutboundRule
from userd import paging, store, validation
from userd.cache_sync import CacheSync
from userd.models import PreferencesPatch, PushTarget, PushTargetInput, User, UserInput
from userd.passwords import Passwords

log = structlog.get_logger(__name__)

MAX_BATCH = 500  # ids in one BatchGetUsers


class Users:
    """Users, their devices and preferences; PostgreSQL first, then the cache."""

    def __init__(
        self,
        *,
        pool: AsyncConnectionPool,
        cache: CacheSync,
        passwords: Passwords,
        outbound: OutboundRule,
    ) -> None:
        self._pool = pool
        self._cache = cache
        self._passwords = passwords
        # Where Web Push endpoints may point (checked by syntax here, by address at send).
        self._outbound = outbound

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[store.Conn]:
        """A transaction; a taken email (unique index) becomes ALREADY_EXISTS."""
        try:
            async with store.connect(self._pool) as conn, conn.transaction():
                yield conn
        except UniqueViolation as exc:
            if exc.diag.constraint_name == store.EMAIL_CONSTRAINT:
                raise AlreadyExists("a user with this email already exists") from None
            raise

    async def create(self, *, data: UserInput, password: str) -> User:
        new = validation.new_user(data, password, outbound=self._outbound)
        password_hash = await self._passwords.hash(new.password)
        user_id = uuid4()
        async with self._transaction() as conn:
            await store.insert_user(conn, user_id=user_id, user=new, password_hash=password_hash)
            for target in new.push_targets:
                await store.upsert_push_target(conn, user_id=user_id, target=target)
            user = await self._fetch(conn, user_id)
        await self._cache.write(user)
        log.info("user created", user_id=str(user_id))
        return user

    async def get(self, *, user_id: str) -> User:
        """From the cache when it holds the user, else from PostgreSQL (filling the cache)."""
        uid = validation.user_id(user_id, "id")
        cached = await self._cache.read(uid)
        if cached is not None:
            return cached
        async with store.connect(self._pool) as conn:
            user = await self._fetch(conn, uid)
        await self._cache.fill(user)
        return user

    async def find_by_email(self, *, email: str) -> User:
        """The user with this email address (normalised as at creation)."""
        errors = validation.Violations()
        address = validation.email(email, "email", errors)
        errors.check()
        async with store.connect(self._pool) as conn:
            uid = await store.user_id_by_email(conn, email=address)
        if uid is None:
            raise NotFound("no user with that email address")
        return await self.get(user_id=str(uid))

    async def get_many(self, *, user_ids: Sequence[str]) -> tuple[list[User], list[str]]:
        """`get` for up to MAX_BATCH ids at once: the users found and the ids not found.

        The cache answers what it holds in one round trip; the rest come from PostgreSQL
        in one read and fill the cache in one more.
        """
        if not 1 <= len(user_ids) <= MAX_BATCH:
            raise InvalidArgument.field("ids", f"from 1 to {MAX_BATCH} user ids")
        wanted: dict[UUID, str] = {}
        for index, value in enumerate(user_ids):
            wanted.setdefault(validation.user_id(value, f"ids[{index}]"), value)
        ids = list(wanted)
        found = await self._cache.read_many(ids)
        misses = [uid for uid in ids if uid not in found]
        if misses:
            async with store.connect(self._pool) as conn:
                fetched = await store.fetch_users(conn, user_ids=misses)
            await self._cache.fill_many(fetched)
            found.update((user.id, user) for user in fetched)
        missing = [value for uid, value in wanted.items() if uid not in found]
        return list(found.values()), missing

    async def update(
        self, *, user_id: str, data: UserInput, paths: Sequence[str], password: str
    ) -> User:
        """Changes only what `paths` (the update mask) names."""
        uid = validation.user_id(user_id, "user.id")
        changes = validation.changes(data, paths, password, outbound=self._outbound)
        columns = dict(changes.columns)
        if changes.password is not None:
            columns["password_hash"] = await self._passwords.hash(changes.password)
        async with self._transaction() as conn:
            await self._update_row(conn, uid, columns)
            if changes.push_targets is not None:
                await store.replace_push_targets(conn, user_id=uid, targets=changes.push_targets)
            user = await self._fetch(conn, uid)
        return await self._changed(user, "user updated")

    async def update_preferences(self, *, user_id: str, patch: PreferencesPatch) -> User:
        uid = validation.user_id(user_id, "user_id")
        errors = validation.Violations()
        columns: dict[str, object] = {**validation.preference_columns(patch, "preferences", errors)}
        errors.check()
        async with self._transaction() as conn:
            await self._update_row(conn, uid, columns)
            user = await self._fetch(conn, uid)
        return await self._changed(user, "preferences updated")

    async def add_push_target(
        self, *, user_id: str, target: PushTargetInput
    ) -> tuple[User, PushTarget]:
        """Adds a device (the same token or endpoint again updates it)."""
        uid = validation.user_id(user_id, "user_id")
        errors = validation.Violations()
        new = validation.push_target(target, "target", errors, outbound=self._outbound)
        errors.check()
        async with self._transaction() as conn:
            await self._update_row(conn, uid, {})
            others = await store.count_other_push_targets(conn, user_id=uid, address=new.address)
            if others >= validation.MAX_PUSH_TARGETS:
                raise Conflict(
                    f"the user has {others} push targets, the most allowed: remove one first"
                )
            added = await store.upsert_push_target(conn, user_id=uid, target=new)
            user = await self._fetch(conn, uid)
        return await self._changed(user, "push target added"), added

    async def remove_push_target(
        self, *, user_id: str, target_id: str, token: str
    ) -> tuple[User, bool]:
        """Removes a device by id or by token/endpoint; removing a missing one is no error."""
        uid = validation.user_id(user_id, "user_id")
        if bool(target_id) == bool(token):
            raise InvalidArgument.field("target_id", "set exactly one of target_id and token")
        tid = validation.user_id(target_id, "target_id") if target_id else None
        async with self._transaction() as conn:
            if not await store.lock_user(conn, user_id=uid):
                raise NotFound(f"no user {uid}")
            removed = await store.remove_push_target(
                conn, user_id=uid, target_id=tid, address=token or None
            )
            if removed:
                await self._update_row(conn, uid, {})
            user = await self._fetch(conn, uid)
        if removed:
            await self._changed(user, "push target removed")
        return user, removed

    async def list_page(self, *, page_size: int, page_token: str) -> tuple[list[User], str]:
        """A page of users in (create_time, id) order, and the next page's token ("" at the end)."""
        page = paging.page(page_size, page_token)
        async with store.connect(self._pool) as conn:
            users = await store.list_users(conn, page=page)
        if len(users) <= page.size:
            return users, ""
        last = users[page.size - 1]
        return users[: page.size], paging.next_token(last.create_time, last.id)

    async def delete(self, *, user_id: str) -> None:
        """Deletes the user and its devices, and evicts it from the cache."""
        uid = validation.user_id(user_id, "id")
        async with self._transaction() as conn:
            if not await store.delete_user(conn, user_id=uid):
                raise NotFound(f"no user {uid}")
        await self._cache.remove(uid)
        log.info("user deleted", user_id=str(uid))

    async def _update_row(
        self, conn: store.Conn, user_id: UUID, columns: dict[str, object]
    ) -> None:
        if not await store.update_user(conn, user_id=user_id, columns=columns):
            raise NotFound(f"no user {user_id}")

    async def _fetch(self, conn: store.Conn, user_id: UUID) -> User:
        user = await store.fetch_user(conn, user_id=user_id)
        if user is None:
            raise NotFound(f"no user {user_id}")
        return user

    async def _changed(self, user: User, event: str) -> User:
        await self._cache.write(user)
        log.info(event, user_id=str(user.id), version=user.version)
        return user
