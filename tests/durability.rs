//! Durable before acknowledged: every pooled SQLite connection commits with
//! `synchronous=FULL`; on PostgreSQL the server's `synchronous_commit` is read (and warned
//! about at start when off).

mod common;

use common::TestEnv;
use trialdesk::store::Durability;

#[tokio::test]
async fn every_pooled_connection_commits_durably() {
    let env = TestEnv::new("").await;
    match env.app.store.durability().await.unwrap() {
        Durability::Sqlite { synchronous } => {
            assert_eq!(
                synchronous.len() as u32,
                env.app.config.database.max_connections,
                "every connection of the pool was asked"
            );
            assert!(synchronous.iter().all(|s| *s >= 2), "{synchronous:?}");
        }
        Durability::Postgres { synchronous_commit } => {
            // The test server runs with the default.
            assert_ne!(synchronous_commit, "off");
        }
    }
    let d = env.app.store.durability().await.unwrap();
    assert_eq!(d.warning(), None);
}
