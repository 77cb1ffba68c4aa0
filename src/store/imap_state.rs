//! IMAP bookkeeping: per mailbox the UIDVALIDITY and a floor below which every UID is handled,
//! plus the handled UIDs above the floor. The source reads it to list only unhandled mail and
//! writes it only after a mail's decision is committed *and* the mail is filed, so a crash
//! anywhere leaves the mail to be offered again (the pipeline then knows it by its key).

use super::{begin_write, dispatch, Store, StoreError};

/// Where trialdesk stands in one IMAP mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImapMailboxState {
    pub uidvalidity: i64,
    /// Every UID below this is handled or gone.
    pub uid_floor: i64,
}

impl Store {
    pub async fn imap_mailbox_state(
        &self,
        account: &str,
        mailbox: &str,
    ) -> Result<Option<ImapMailboxState>, StoreError> {
        let row: Option<(i64, i64)> = dispatch!(self, |pool| {
            sqlx::query_as(
                "SELECT uidvalidity, uid_floor FROM imap_mailboxes \
                 WHERE account = $1 AND mailbox = $2",
            )
            .bind(account)
            .bind(mailbox)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(uidvalidity, uid_floor)| ImapMailboxState {
            uidvalidity,
            uid_floor,
        }))
    }

    /// Starts over in a mailbox (first sight, or a new UIDVALIDITY): floor 1, no handled UIDs.
    pub async fn imap_reset_mailbox(
        &self,
        account: &str,
        mailbox: &str,
        uidvalidity: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            sqlx::query("DELETE FROM imap_done WHERE account = $1 AND mailbox = $2")
                .bind(account)
                .bind(mailbox)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO imap_mailboxes (account, mailbox, uidvalidity, uid_floor, updated_at) \
                 VALUES ($1, $2, $3, 1, $4) \
                 ON CONFLICT (account, mailbox) DO UPDATE SET uidvalidity = $3, uid_floor = 1, \
                 updated_at = $4",
            )
            .bind(account)
            .bind(mailbox)
            .bind(uidvalidity)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Handled UIDs from `from_uid` to `to_uid` (inclusive): those of one listing window, so
    /// a long run of handled mail left in the mailbox (`flag_seen`) is never read at once.
    pub async fn imap_done_uids(
        &self,
        account: &str,
        mailbox: &str,
        uidvalidity: i64,
        from_uid: i64,
        to_uid: i64,
    ) -> Result<Vec<i64>, StoreError> {
        Ok(dispatch!(self, |pool| {
            sqlx::query_scalar(
                "SELECT uid FROM imap_done WHERE account = $1 AND mailbox = $2 \
                 AND uidvalidity = $3 AND uid >= $4 AND uid <= $5 ORDER BY uid",
            )
            .bind(account)
            .bind(mailbox)
            .bind(uidvalidity)
            .bind(from_uid)
            .bind(to_uid)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Records UIDs as handled (their decisions committed and the mails filed), all in one
    /// write transaction: one outcome's share of a batch costs one commit, not one per UID.
    pub async fn imap_mark_done_many(
        &self,
        account: &str,
        mailbox: &str,
        uidvalidity: i64,
        uids: &[i64],
        disposition: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        if uids.is_empty() {
            return Ok(());
        }
        dispatch!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            for uid in uids {
                sqlx::query(
                    "INSERT INTO imap_done (account, mailbox, uidvalidity, uid, disposition, done_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (account, mailbox, uidvalidity, uid) DO NOTHING",
                )
                .bind(account)
                .bind(mailbox)
                .bind(uidvalidity)
                .bind(*uid)
                .bind(disposition)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Raises the floor (never lowers it: another instance may be further) and forgets the
    /// handled UIDs below it. Does nothing when the UIDVALIDITY moved on meanwhile.
    pub async fn imap_advance_floor(
        &self,
        account: &str,
        mailbox: &str,
        uidvalidity: i64,
        floor: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            sqlx::query(
                "UPDATE imap_mailboxes SET uid_floor = $4, updated_at = $5 \
                 WHERE account = $1 AND mailbox = $2 AND uidvalidity = $3 AND uid_floor < $4",
            )
            .bind(account)
            .bind(mailbox)
            .bind(uidvalidity)
            .bind(floor)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM imap_done WHERE account = $1 AND mailbox = $2 \
                 AND uidvalidity = $3 AND uid < $4",
            )
            .bind(account)
            .bind(mailbox)
            .bind(uidvalidity)
            .bind(floor)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn mark_done_many_records_each_uid_once() {
        let db = crate::config::DatabaseConfig {
            url: "sqlite::memory:".into(),
            max_connections: 1,
            acquire_timeout: std::time::Duration::from_secs(5),
        };
        let store = Store::open(&db, std::path::Path::new(".")).await.unwrap();
        store.imap_reset_mailbox("a", "INBOX", 9, 1).await.unwrap();
        store
            .imap_mark_done_many("a", "INBOX", 9, &[], "answered", 2)
            .await
            .unwrap();
        store
            .imap_mark_done_many("a", "INBOX", 9, &[3, 5, 8], "answered", 2)
            .await
            .unwrap();
        // Already recorded ones (a second filing after a crash) are no error.
        store
            .imap_mark_done_many("a", "INBOX", 9, &[5, 9], "ignored", 3)
            .await
            .unwrap();
        assert_eq!(
            store.imap_done_uids("a", "INBOX", 9, 1, 100).await.unwrap(),
            vec![3, 5, 8, 9]
        );
        assert_eq!(
            store.imap_done_uids("a", "INBOX", 9, 4, 8).await.unwrap(),
            vec![5, 8]
        );
        assert!(store
            .imap_done_uids("a", "INBOX", 8, 1, 100)
            .await
            .unwrap()
            .is_empty());
    }
}
