"""The permission computation against a separate, deliberately plain re-statement of
Discord's documented algorithm (docs: "Permissions → Permission Hierarchy"), bit by bit,
plus the properties a community relies on."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus_protocol.permissions import (
    ALL_PERMISSIONS,
    NONE,
    Overwrite,
    OverwriteType,
    Permissions,
    RoleGrant,
    base_permissions,
    channel_permissions,
    parse_permissions,
)

GUILD = 1000
OWNER = 1
USER = 2

# -- the reference ----------------------------------------------------------------------
# Bits are indices 0..63; a permission set is a list of booleans. Every step below is one
# sentence of Discord's documentation, applied to one bit at a time.

DEFINED_BITS = [bit for bit in range(64) if any(p.value == 1 << bit for p in Permissions)]
ADMIN_BIT = 3
VIEW_BIT = 10
SEND_BIT = 11
# Without SEND_MESSAGES these mean nothing (TTS, @everyone, embeds, attachments).
SEND_DEPENDENT_BITS = [12, 17, 14, 15]


def bits(value: int) -> list[bool]:
    return [bool(value >> bit & 1) for bit in range(64)]


def number(flags: list[bool]) -> int:
    total = 0
    for bit, on in enumerate(flags):
        if on:
            total += 2**bit
    return total


@dataclass(frozen=True)
class Scenario:
    owner_id: int
    roles: list[RoleGrant]  # includes @everyone (id GUILD)
    member_roles: list[int]
    overwrites: list[Overwrite]


def reference_base(s: Scenario, user_id: int) -> list[bool]:
    everything = [bit in DEFINED_BITS for bit in range(64)]
    # "If the member is the guild owner, they have all permissions."
    if user_id == s.owner_id:
        return everything
    by_id = {role.id: role for role in s.roles}
    # "Start with the @everyone role's permissions ..."
    result = bits(by_id[GUILD].permissions) if GUILD in by_id else [False] * 64
    # "... then OR in every role the member has."
    for role_id in s.member_roles:
        if role_id in by_id:
            granted = bits(by_id[role_id].permissions)
            for bit in range(64):
                result[bit] = result[bit] or granted[bit]
    # "ADMINISTRATOR overrides everything."
    if result[ADMIN_BIT]:
        return everything
    return result


def apply(result: list[bool], allow: list[bool], deny: list[bool]) -> list[bool]:
    out = list(result)
    for bit in range(64):
        if deny[bit]:
            out[bit] = False
        if allow[bit]:
            out[bit] = True
    return out


def reference_channel(s: Scenario, user_id: int) -> list[bool]:
    base = reference_base(s, user_id)
    if base[ADMIN_BIT]:
        return [bit in DEFINED_BITS for bit in range(64)]
    result = base
    everyone = [o for o in s.overwrites if o.type == OverwriteType.ROLE and o.target_id == GUILD]
    for overwrite in everyone:
        result = apply(result, bits(overwrite.allow), bits(overwrite.deny))
    # All the member's role overwrites at once: denies are gathered, allows are gathered,
    # denies applied first, so an allow from any role wins over a deny from another.
    role_allow = [False] * 64
    role_deny = [False] * 64
    for overwrite in s.overwrites:
        if overwrite.type == OverwriteType.ROLE and overwrite.target_id in s.member_roles:
            if overwrite.target_id == GUILD:
                continue
            for bit in range(64):
                role_allow[bit] = role_allow[bit] or bool(overwrite.allow >> bit & 1)
                role_deny[bit] = role_deny[bit] or bool(overwrite.deny >> bit & 1)
    result = apply(result, role_allow, role_deny)
    for overwrite in s.overwrites:
        if overwrite.type == OverwriteType.MEMBER and overwrite.target_id == user_id:
            result = apply(result, bits(overwrite.allow), bits(overwrite.deny))
    # Implicit: no VIEW_CHANNEL, nothing in the channel; no SEND_MESSAGES, none of what
    # only makes sense when sending.
    if not result[VIEW_BIT]:
        return [False] * 64
    if not result[SEND_BIT]:
        for bit in SEND_DEPENDENT_BITS:
            result[bit] = False
    return result


def compute(s: Scenario, user_id: int = USER) -> tuple[Permissions, Permissions]:
    base = base_permissions(
        guild_id=GUILD,
        owner_id=s.owner_id,
        user_id=user_id,
        roles=s.roles,
        member_role_ids=s.member_roles,
    )
    channel = channel_permissions(
        base,
        guild_id=GUILD,
        user_id=user_id,
        member_role_ids=s.member_roles,
        overwrites=s.overwrites,
    )
    return base, channel


# -- generators ---------------------------------------------------------------------------

defined = st.sampled_from([1 << bit for bit in DEFINED_BITS])
perm_sets = st.lists(defined, max_size=12).map(lambda xs: Permissions(sum(set(xs))))
# Mostly without ADMINISTRATOR, so the channel rules are exercised.
plain_sets = perm_sets.map(lambda p: p & ~Permissions.ADMINISTRATOR)
# Sets that often touch the bits the implicit rules care about.
focus = st.sampled_from(
    [
        Permissions.VIEW_CHANNEL,
        Permissions.SEND_MESSAGES,
        Permissions.MENTION_EVERYONE,
        Permissions.EMBED_LINKS,
        Permissions.MANAGE_MESSAGES,
    ]
)
focused_sets = st.lists(focus, max_size=4).map(lambda xs: Permissions(sum(set(xs))))
some_perms = st.one_of(plain_sets, focused_sets, perm_sets)

ROLE_IDS = [GUILD + n for n in range(1, 7)]


@st.composite
def scenarios(draw: st.DrawFn, admin: bool = True) -> Scenario:
    perms = some_perms if admin else st.one_of(plain_sets, focused_sets)
    role_ids = draw(st.lists(st.sampled_from(ROLE_IDS), unique=True, max_size=6))
    roles = [RoleGrant(GUILD, 0, draw(perms))]
    roles += [RoleGrant(rid, i + 1, draw(perms)) for i, rid in enumerate(role_ids)]
    # The member may hold roles that no longer exist, and may list @everyone itself.
    member_roles = draw(st.lists(st.sampled_from([*ROLE_IDS, GUILD]), unique=True, max_size=6))
    targets = draw(
        st.lists(
            st.sampled_from(
                [(GUILD, OverwriteType.ROLE)]
                + [(rid, OverwriteType.ROLE) for rid in ROLE_IDS]
                + [
                    (USER, OverwriteType.MEMBER),
                    (OWNER, OverwriteType.MEMBER),
                    (99, OverwriteType.MEMBER),
                ]
            ),
            unique=True,
            max_size=8,
        )
    )
    overwrites = [Overwrite(t, kind, draw(some_perms), draw(some_perms)) for t, kind in targets]
    owner = draw(st.sampled_from([OWNER, OWNER, USER]))
    return Scenario(owner, roles, member_roles, overwrites)


# -- properties -------------------------------------------------------------------------------


@settings(max_examples=400)
@given(scenarios())
def test_matches_the_reference(s: Scenario) -> None:
    base, channel = compute(s)
    assert base == number(reference_base(s, USER))
    assert channel == number(reference_channel(s, USER))
    # Nothing ever leaves the defined bits.
    assert base & ~ALL_PERMISSIONS == 0
    assert channel & ~ALL_PERMISSIONS == 0


@given(scenarios())
def test_owner_gets_everything(s: Scenario) -> None:
    owned = Scenario(USER, s.roles, s.member_roles, s.overwrites)
    base, channel = compute(owned)
    assert base == ALL_PERMISSIONS
    assert channel == ALL_PERMISSIONS


@given(scenarios(), st.sampled_from([GUILD, *ROLE_IDS]))
def test_administrator_gets_everything(s: Scenario, admin_role: int) -> None:
    roles = [
        RoleGrant(r.id, r.position, r.permissions | Permissions.ADMINISTRATOR)
        if r.id == admin_role
        else r
        for r in s.roles
    ]
    if admin_role not in {r.id for r in roles}:
        roles.append(RoleGrant(admin_role, 9, Permissions.ADMINISTRATOR))
    member_roles = [*s.member_roles, admin_role] if admin_role != GUILD else s.member_roles
    # Even overwrites denying everything cannot touch an administrator.
    overwrites = [Overwrite(o.target_id, o.type, NONE, ALL_PERMISSIONS) for o in s.overwrites]
    admin = Scenario(OWNER, roles, list(dict.fromkeys(member_roles)), overwrites)
    base, channel = compute(admin)
    assert base == ALL_PERMISSIONS
    assert channel == ALL_PERMISSIONS


@given(scenarios(admin=False))
def test_without_view_channel_nothing_in_the_channel(s: Scenario) -> None:
    # A member overwrite denying VIEW_CHANNEL (and allowing everything else).
    others = [o for o in s.overwrites if o.target_id != USER]
    deny_view = Overwrite(
        USER,
        OverwriteType.MEMBER,
        ALL_PERMISSIONS & ~Permissions.VIEW_CHANNEL,
        Permissions.VIEW_CHANNEL,
    )
    hidden = Scenario(OWNER, s.roles, s.member_roles, [*others, deny_view])
    assert compute(hidden)[1] == NONE
    # Base permissions without VIEW_CHANNEL and no overwrite granting it: nothing either.
    roles = [
        RoleGrant(r.id, r.position, r.permissions & ~Permissions.VIEW_CHANNEL) for r in s.roles
    ]
    no_grant = [
        Overwrite(o.target_id, o.type, o.allow & ~Permissions.VIEW_CHANNEL, o.deny)
        for o in s.overwrites
    ]
    assert compute(Scenario(OWNER, roles, s.member_roles, no_grant))[1] == NONE


@given(scenarios(admin=False), some_perms, some_perms)
def test_member_overwrite_beats_role_overwrites(
    s: Scenario, allow: Permissions, deny: Permissions
) -> None:
    allow |= Permissions.VIEW_CHANNEL
    deny &= ~allow
    others = [o for o in s.overwrites if o.target_id != USER]
    mine = Overwrite(USER, OverwriteType.MEMBER, allow, deny)
    scenario = Scenario(OWNER, s.roles, s.member_roles, [*others, mine])
    _, channel = compute(scenario)
    implicit = NONE
    if not channel & Permissions.SEND_MESSAGES:
        implicit = (
            Permissions.SEND_TTS_MESSAGES
            | Permissions.MENTION_EVERYONE
            | Permissions.EMBED_LINKS
            | Permissions.ATTACH_FILES
        )
    assert channel & mine.allow & ~implicit == mine.allow & ~implicit
    assert channel & mine.deny == NONE


@given(scenarios(admin=False), plain_sets)
def test_role_overwrite_beats_everyone_overwrite(s: Scenario, flags: Permissions) -> None:
    flags |= Permissions.VIEW_CHANNEL | Permissions.SEND_MESSAGES
    role = ROLE_IDS[0]
    roles = [r for r in s.roles if r.id != role] + [RoleGrant(role, 1, NONE)]
    member_roles = list(dict.fromkeys([*s.member_roles, role]))
    overwrites = [
        Overwrite(GUILD, OverwriteType.ROLE, NONE, flags),  # @everyone: denied
        Overwrite(role, OverwriteType.ROLE, flags, NONE),  # the member's role: allowed
    ]
    _, channel = compute(Scenario(OWNER, roles, member_roles, overwrites))
    assert channel & flags == flags
    # ... and the other way round.
    overwrites = [
        Overwrite(GUILD, OverwriteType.ROLE, flags, NONE),
        Overwrite(role, OverwriteType.ROLE, NONE, Permissions.VIEW_CHANNEL),
    ]
    assert compute(Scenario(OWNER, roles, member_roles, overwrites))[1] == NONE


@given(scenarios(admin=False), plain_sets)
def test_role_allow_wins_over_role_deny(s: Scenario, flags: Permissions) -> None:
    flags |= Permissions.VIEW_CHANNEL | Permissions.SEND_MESSAGES
    a, b = ROLE_IDS[0], ROLE_IDS[1]
    roles = [RoleGrant(GUILD, 0, NONE), RoleGrant(a, 1, NONE), RoleGrant(b, 2, NONE)]
    for allowing, denying in ((a, b), (b, a)):
        overwrites = [
            Overwrite(allowing, OverwriteType.ROLE, flags, NONE),
            Overwrite(denying, OverwriteType.ROLE, NONE, flags),
        ]
        _, channel = compute(Scenario(OWNER, roles, [a, b], overwrites))
        assert channel == flags


@given(scenarios(), st.randoms(use_true_random=False))
def test_order_of_roles_and_overwrites_does_not_matter(s: Scenario, rnd: object) -> None:
    import random

    assert isinstance(rnd, random.Random)
    expected = compute(s)
    for _ in range(3):
        roles, member_roles, overwrites = list(s.roles), list(s.member_roles), list(s.overwrites)
        rnd.shuffle(roles)
        rnd.shuffle(member_roles)
        rnd.shuffle(overwrites)
        assert compute(Scenario(s.owner_id, roles, member_roles, overwrites)) == expected
    # Iterables are consumed once: generators work as well as lists.
    base = base_permissions(
        guild_id=GUILD,
        owner_id=s.owner_id,
        user_id=USER,
        roles=iter(s.roles),
        member_role_ids=iter(s.member_roles),
    )
    assert base == expected[0]
    channel = channel_permissions(
        base,
        guild_id=GUILD,
        user_id=USER,
        member_role_ids=iter(s.member_roles),
        overwrites=iter(s.overwrites),
    )
    assert channel == expected[1]


def test_known_cases() -> None:
    view_send = Permissions.VIEW_CHANNEL | Permissions.SEND_MESSAGES
    roles = [RoleGrant(GUILD, 0, view_send | Permissions.MENTION_EVERYONE)]
    # A read-only announcement channel: @everyone may not send, so not mention either.
    readonly = [Overwrite(GUILD, OverwriteType.ROLE, NONE, Permissions.SEND_MESSAGES)]
    _, channel = compute(Scenario(OWNER, roles, [], readonly))
    assert channel == Permissions.VIEW_CHANNEL
    # A private channel: hidden from @everyone, shown to one member.
    private = [
        Overwrite(GUILD, OverwriteType.ROLE, NONE, Permissions.VIEW_CHANNEL),
        Overwrite(USER, OverwriteType.MEMBER, Permissions.VIEW_CHANNEL, NONE),
    ]
    assert (
        compute(Scenario(OWNER, roles, [], private))[1] == view_send | Permissions.MENTION_EVERYONE
    )
    assert compute(Scenario(OWNER, roles, [], private), user_id=99)[1] == NONE
    # A role overwrite for a role the member does not hold does nothing.
    other_role = [Overwrite(ROLE_IDS[0], OverwriteType.ROLE, NONE, ALL_PERMISSIONS)]
    assert compute(Scenario(OWNER, roles, [], other_role))[1] == roles[0].permissions


# -- parse_permissions ----------------------------------------------------------------------


@given(perm_sets)
def test_parse_permissions_accepts_decimal_strings_and_ints(value: Permissions) -> None:
    assert parse_permissions(str(int(value))) == value
    assert parse_permissions(int(value)) == value
    assert isinstance(parse_permissions(int(value)), Permissions)


@given(st.integers(min_value=0, max_value=2**64))
def test_parse_permissions_rejects_undefined_bits(value: int) -> None:
    undefined = any(
        value >> bit & 1 and bit not in DEFINED_BITS for bit in range(value.bit_length())
    )
    if undefined:
        for wire in (value, str(value)):
            with pytest.raises(ValueError):
                parse_permissions(wire)
    else:
        assert parse_permissions(value) == value
        assert parse_permissions(str(value)) == value


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        -1,
        -8,
        "-8",
        " 8",
        "8 ",
        "+8",
        "0x8",
        "8.0",
        "1_024",
        "",
        "abc",
        "٨",  # an Arabic-Indic eight: a digit, but not ASCII
        8.0,
        None,
        b"8",
        [8],
        1 << 47,
        str(1 << 48),
        1 << 63,
        "9" * 21,
    ],
)
def test_parse_permissions_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_permissions(value)
