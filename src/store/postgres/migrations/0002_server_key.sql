-- Schema version 2: the fingerprint of the server key (issue 14).
--
-- Every instance sharing the database must hash app passwords, API
-- tokens and static tokens with the same key (<data>/server.key, copied
-- by the operator). The first instance records its key's fingerprint
-- (a keyed hash, which reveals nothing of the key); an instance whose key
-- has another fingerprint refuses to start.
CREATE TABLE server_key (
    only_one    boolean PRIMARY KEY DEFAULT true CHECK (only_one),
    fingerprint text NOT NULL,
    recorded    bigint NOT NULL
);
