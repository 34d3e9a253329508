-- Portcullis on PostgreSQL, schema version 1 (issue 14).
--
-- Applied once per database by `store::postgres::migrate`, under a
-- session advisory lock, inside one transaction that also records the
-- version in `portcullis_schema`. Never edit an applied migration: add
-- 0002_….sql.
--
-- Case-insensitive names and emails are kept as explicit key columns
-- computed by the application (ASCII lowercase for names, Unicode
-- lowercase for emails, as the sled backend keys its indexes), so
-- uniqueness does not depend on the database's collation or ctype.
-- Ids are UUIDs; numbers (uidNumber, gidNumber, steps, generations) are
-- bigint because u32 and u64 do not fit integer.

-- The allocators and the membership epoch: one row each, so allocating a
-- uidNumber and changing a membership lock different rows.
CREATE TABLE counters (
    name  text PRIMARY KEY,
    value bigint NOT NULL
);
INSERT INTO counters (name, value) VALUES
    ('next_uid', 2000),
    ('next_gid', 4000),
    ('membership_epoch', 0);

CREATE TABLE settings (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE users (
    id              uuid PRIMARY KEY,
    username        text NOT NULL,
    username_key    text NOT NULL UNIQUE,
    full_name       text,
    email           text,
    email_key       text UNIQUE,
    uid_number      bigint NOT NULL UNIQUE,
    gid_number      bigint NOT NULL,
    disabled        boolean NOT NULL,
    attrs           jsonb NOT NULL,
    created         bigint NOT NULL,
    modified        bigint NOT NULL,
    pwd_changed     bigint,
    cred_generation bigint NOT NULL
);

-- Password hashes, apart from the records that become entries.
CREATE TABLE credentials (
    user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    phc     text NOT NULL
);

CREATE TABLE groups (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    name_key    text NOT NULL UNIQUE,
    gid_number  bigint NOT NULL UNIQUE,
    description text,
    created     bigint NOT NULL,
    modified    bigint NOT NULL
);

-- Direct memberships, one table per kind of member; both directions are
-- indexed (the primary key and the reverse index).
CREATE TABLE user_members (
    group_id uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX user_members_by_user ON user_members (user_id, group_id);

CREATE TABLE group_members (
    group_id uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    child_id uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, child_id),
    CHECK (group_id <> child_id)
);
CREATE INDEX group_members_by_child ON group_members (child_id, group_id);

CREATE TABLE group_attrs (
    group_id uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    key      text NOT NULL,
    value    text NOT NULL,
    PRIMARY KEY (group_id, key)
);

CREATE TABLE group_policies (
    group_id      uuid PRIMARY KEY REFERENCES groups (id) ON DELETE CASCADE,
    mfa           text,
    app_passwords boolean
);

-- MFA devices. kind is 'totp' (digits, secret, last_step) or 'static'.
CREATE TABLE mfa_devices (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    id          uuid NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('totp', 'static')),
    digits      smallint,
    label       text NOT NULL,
    created     bigint NOT NULL,
    confirmed   boolean NOT NULL,
    totp_secret bytea,
    last_step   bigint,
    PRIMARY KEY (user_id, id)
);

-- Unused static tokens (keyed hashes); a used one is deleted.
CREATE TABLE mfa_static_tokens (
    user_id   uuid NOT NULL,
    device_id uuid NOT NULL,
    hash      bytea NOT NULL,
    PRIMARY KEY (user_id, device_id, hash),
    FOREIGN KEY (user_id, device_id) REFERENCES mfa_devices (user_id, id) ON DELETE CASCADE
);

-- App passwords and API tokens (kind 'app_password' or 'api_token').
CREATE TABLE app_passwords (
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    id             uuid NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('app_password', 'api_token')),
    name           text NOT NULL,
    created        bigint NOT NULL,
    expires        bigint,
    last_used      bigint,
    last_used_from text,
    hash           bytea NOT NULL UNIQUE,
    PRIMARY KEY (user_id, id)
);

-- Portal sessions under the SHA-256 hash of their secret id.
CREATE TABLE portal_sessions (
    hash         bytea PRIMARY KEY,
    id           uuid NOT NULL,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created      bigint NOT NULL,
    last_seen    bigint NOT NULL,
    address      text NOT NULL,
    user_agent   text NOT NULL,
    csrf         text NOT NULL,
    pending_code boolean NOT NULL
);
CREATE INDEX portal_sessions_by_user ON portal_sessions (user_id);
