-- Schema version 3: per-account failure counters shared by every
-- instance (issue 14), so failed binds through any instance add up to
-- one softlock.
--
-- `key` is the throttle's account key (a kind byte, then the lower-case
-- name as bound; names that do not exist are counted too, so throttling
-- does not tell them apart). Times are ms since the epoch. A row is
-- deleted by a success, or by a purge once its count is forgotten.
CREATE TABLE failure_counters (
    key      bytea PRIMARY KEY,
    failures integer NOT NULL,
    since_ms bigint NOT NULL,
    until_ms bigint NOT NULL
);

-- The softlock rule of auth::throttle, for one atomic upsert
-- (store::postgres::counters): the count after a failure at now_ms, and
-- the lock it sets. Kept equal to the Rust rule by the tests that run
-- the throttle's scenarios against both.
CREATE FUNCTION portcullis_failures_after(
    failures integer, since_ms bigint, until_ms bigint, now_ms bigint,
    cap_ms bigint, forget_after_lock boolean
) RETURNS integer LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN forget_after_lock AND now_ms >= GREATEST(since_ms, until_ms) + cap_ms THEN 1
        WHEN NOT forget_after_lock AND now_ms - since_ms >= cap_ms AND now_ms >= until_ms THEN 1
        ELSE LEAST(failures::bigint + 1, 2147483647)::integer
    END
$$;

CREATE FUNCTION portcullis_lock_until(
    failures integer, until_ms bigint, now_ms bigint,
    threshold integer, first_ms bigint, cap_ms bigint
) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN failures < threshold THEN until_ms
        ELSE LEAST(
            now_ms::numeric + LEAST(
                cap_ms::numeric,
                first_ms::numeric * power(2::numeric, LEAST(failures - threshold, 32))
            ),
            9223372036854775807
        )::bigint
    END
$$;
