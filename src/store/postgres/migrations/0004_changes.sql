-- Schema version 4: the change feed (issue 14). (Version 3, the shared
-- failure counters, comes from the branch i14-ops.)
--
-- Every instance serves reads from an in-process read model. Triggers on
-- the tables that model holds record, in the writing transaction itself,
-- what changed (a kind and the key of the record to read again), so no
-- write path (batch imports and cascades included) can forget to; and
-- they notify the channel `portcullis_changes`, which PostgreSQL delivers
-- at commit, and only then. Each instance listens, and reads the rows
-- past its position (`store::postgres::feed`).
--
-- `seq` grows, but in the order transactions took their numbers, not the
-- order they committed: a reader remembers the numbers it has not seen
-- yet (holes) and asks for them again. Rows are pruned by age.
CREATE TABLE changes (
    seq  bigserial PRIMARY KEY,
    kind text NOT NULL,
    key  text NOT NULL,
    at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX changes_by_time ON changes (at);

-- Records the changed row's key (TG_ARGV[1], a column of the row) under
-- the kind TG_ARGV[0]. One empty payload per transaction: PostgreSQL
-- folds equal notifications of a transaction into one.
CREATE FUNCTION portcullis_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    rec jsonb;
BEGIN
    IF TG_OP = 'DELETE' THEN
        rec := to_jsonb(OLD);
    ELSE
        rec := to_jsonb(NEW);
    END IF;
    INSERT INTO changes (kind, key) VALUES (TG_ARGV[0], rec ->> TG_ARGV[1]);
    PERFORM pg_notify('portcullis_changes', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER users_changed AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION portcullis_changed('user', 'id');
CREATE TRIGGER credentials_changed AFTER INSERT OR UPDATE OR DELETE ON credentials
    FOR EACH ROW EXECUTE FUNCTION portcullis_changed('user', 'user_id');
CREATE TRIGGER groups_changed AFTER INSERT OR UPDATE OR DELETE ON groups
    FOR EACH ROW EXECUTE FUNCTION portcullis_changed('group', 'id');
CREATE TRIGGER group_attrs_changed AFTER INSERT OR UPDATE OR DELETE ON group_attrs
    FOR EACH ROW EXECUTE FUNCTION portcullis_changed('group', 'group_id');
CREATE TRIGGER group_policies_changed AFTER INSERT OR UPDATE OR DELETE ON group_policies
    FOR EACH ROW EXECUTE FUNCTION portcullis_changed('group', 'group_id');
CREATE TRIGGER user_members_changed AFTER INSERT OR UPDATE OR DELETE ON user_members
    FOR EACH ROW EXECUTE FUNCTION portcullis_changed('members', 'group_id');
CREATE TRIGGER group_members_changed AFTER INSERT OR UPDATE OR DELETE ON group_members
    FOR EACH ROW EXECUTE FUNCTION portcullis_changed('members', 'group_id');
CREATE TRIGGER settings_changed AFTER INSERT OR UPDATE OR DELETE ON settings
    FOR EACH ROW EXECUTE FUNCTION portcullis_changed('setting', 'key');
-- Devices as bind sees them (which exist, confirmed or not); a TOTP step
-- advanced on every code bind is not a change of the model.
CREATE TRIGGER mfa_devices_changed AFTER INSERT OR DELETE OR UPDATE OF label, confirmed
    ON mfa_devices
    FOR EACH ROW EXECUTE FUNCTION portcullis_changed('devices', 'user_id');
CREATE TRIGGER epoch_changed AFTER UPDATE ON counters
    FOR EACH ROW WHEN (NEW.name = 'membership_epoch')
    EXECUTE FUNCTION portcullis_changed('epoch', 'name');

-- The LDAP connections bound on every instance, so `session list` on one
-- shows them all (`store::postgres::board`). Each running instance has a
-- row in `instances` under an id of its own, refreshed every few seconds;
-- the rows of an instance not seen for a while (killed) are removed with
-- its connections. Ending a connection held elsewhere is a change row of
-- kind 'end' (key: the connection's id), which its instance sees
-- through the feed and closes.
CREATE TABLE instances (
    id   uuid PRIMARY KEY,
    seen timestamptz NOT NULL
);

CREATE TABLE ldap_connections (
    id       uuid PRIMARY KEY,
    instance uuid NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    user_id  uuid NOT NULL,
    username text NOT NULL,
    address  text NOT NULL,
    bound_at bigint NOT NULL,
    last_op  bigint NOT NULL
);
CREATE INDEX ldap_connections_by_instance ON ldap_connections (instance);
CREATE INDEX ldap_connections_by_user ON ldap_connections (user_id);
