-- IMAP bookkeeping: which UIDs of a mailbox are handled, so trialdesk never depends on \Seen
-- (other clients set it) and never re-reads a large mailbox from the start. Same text for
-- SQLite and PostgreSQL.
--
-- Per (account, mailbox): the UIDVALIDITY the UIDs belong to, and uid_floor: every UID below
-- it is handled (acknowledged after its decision was committed) or gone. A change of
-- UIDVALIDITY resets both; the mailbox is then re-read and the pipeline recognises mail it
-- already handled by its message key.
CREATE TABLE imap_mailboxes (
    account     TEXT NOT NULL,
    mailbox     TEXT NOT NULL,
    uidvalidity BIGINT NOT NULL,
    uid_floor   BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (account, mailbox)
);

-- UIDs at or above uid_floor that are already handled (a mail set aside after a failure keeps
-- the floor below it while later mail is done). Pruned as the floor passes them.
CREATE TABLE imap_done (
    account     TEXT NOT NULL,
    mailbox     TEXT NOT NULL,
    uidvalidity BIGINT NOT NULL,
    uid         BIGINT NOT NULL,
    disposition TEXT NOT NULL,
    done_at     BIGINT NOT NULL,
    PRIMARY KEY (account, mailbox, uidvalidity, uid)
);
